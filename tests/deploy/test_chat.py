"""`scratchformers chat`: the chat template, one-shot and multi-turn answers, streaming, errors; `convert` keeps the
tokenizer (and its chat template) and takes a Hub id.

Every answer is checked against `model.generate` on `tokenizer.apply_chat_template(...)` of the same conversation
(greedy), for our Llama-style GPT and, after `convert`, against transformers' own LlamaForCausalLM.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest
import torch
import transformers
from chat_helpers import TEMPLATE, chat_tokenizer, reference_answer, save_chat_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.chat import ChatSession
from scratchformers.data import DATA_DIR
from scratchformers_cli import main

# Refuses the system role, as some real templates do (Gemma's, Mistral's older ones).
NO_SYSTEM = "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}" \
    "{% endif %}{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny chat model (chat_helpers), saved."""
    return save_chat_checkpoint(tmp_path_factory.mktemp("chat"))


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def chat(args, monkeypatch, capsys, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = main(["chat", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ one-shot and turns


@pytest.mark.parametrize("stream", [True, False])
def test_one_shot_greedy_answer_is_generate_on_the_templated_prompt(checkpoint, monkeypatch, capsys, stream):
    status, out, _ = chat([checkpoint, "--prompt", "Open the file", "--greedy", "--max-new-tokens", "12",
                           *([] if stream else ["--no-stream"])], monkeypatch, capsys)
    assert status == 0
    model, tokenizer = load(checkpoint)
    expected = reference_answer(model, tokenizer, [{"role": "user", "content": "Open the file"}], 12)
    assert expected.strip()  # a real answer to compare, not an empty string
    assert out == expected + "\n"


def test_system_prompt_heads_the_conversation(checkpoint, monkeypatch, capsys):
    status, out, _ = chat([checkpoint, "--prompt", "Hi", "--system", "Be brief.", "--greedy", "--max-new-tokens",
                           "10"], monkeypatch, capsys)
    assert status == 0
    model, tokenizer = load(checkpoint)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert out == reference_answer(model, tokenizer, messages, 10) + "\n"


def test_second_turn_answers_the_whole_conversation(checkpoint, monkeypatch, capsys):
    status, out, _ = chat([checkpoint, "--greedy", "--max-new-tokens", "8", "--no-stream"], monkeypatch, capsys,
                          stdin="Open the file\nAnd then?\n")
    assert status == 0
    model, tokenizer = load(checkpoint)
    first = reference_answer(model, tokenizer, [{"role": "user", "content": "Open the file"}], 8)
    history = [{"role": "user", "content": "Open the file"}, {"role": "assistant", "content": first},
               {"role": "user", "content": "And then?"}]
    second = reference_answer(model, tokenizer, history, 8)
    alone = reference_answer(model, tokenizer, [{"role": "user", "content": "And then?"}], 8)
    assert second != alone  # the history changes the answer, so the comparison below can fail
    assert out == f"{first}\n{second}\n"


def test_session_prompt_ids_hold_the_first_answer(checkpoint, monkeypatch):
    model, tokenizer = load(checkpoint)
    seen = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: seen.append(kw["input_ids"]) or generate(**kw))
    session = ChatSession(model, tokenizer, max_new_tokens=6, do_sample=False)
    first = session.reply("Open the file")
    session.reply("And then?")
    history = [{"role": "user", "content": "Open the file"}, {"role": "assistant", "content": first},
               {"role": "user", "content": "And then?"}]
    expected = tokenizer.apply_chat_template(history, add_generation_prompt=True, return_dict=True,
                                             return_tensors="pt")["input_ids"]
    assert torch.equal(seen[1], expected)
    assert session.messages[:3] == history and session.messages[3]["role"] == "assistant"


def test_replies_stop_at_the_end_of_turn_token_as_well_as_the_models_own(checkpoint, monkeypatch):
    """Chat templates end a turn with the tokenizer's eos; a checkpoint whose generation config names another stop
    token (an instruct model's <|eot_id|>-style token, or a base model's) must stop at both."""
    model, tokenizer = load(checkpoint)
    model.generation_config.eos_token_id = 7
    seen = {}
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: seen.update(kw) or generate(**kw))
    ChatSession(model, tokenizer, max_new_tokens=3).reply("Hi")
    assert seen["eos_token_id"] == [7, tokenizer.eos_token_id]


def test_reset_forgets_the_conversation_and_exit_stops(checkpoint, monkeypatch, capsys):
    status, out, err = chat([checkpoint, "--greedy", "--max-new-tokens", "6", "--no-stream"], monkeypatch, capsys,
                            stdin="Open the file\n/reset\nOpen the file\n/exit\nnever answered\n")
    assert status == 0
    answers = out.splitlines()
    model, tokenizer = load(checkpoint)
    expected = reference_answer(model, tokenizer, [{"role": "user", "content": "Open the file"}], 6)
    assert out == f"{expected}\n{expected}\n", answers  # after /reset the same question gets the same answer
    assert "cleared" in err


def test_streamed_and_printed_sampled_answers_are_the_same_text(checkpoint, monkeypatch, capsys):
    args = [checkpoint, "--max-new-tokens", "15", "--temperature", "1.0", "--top-k", "50", "--seed", "3"]
    _, streamed, _ = chat(args, monkeypatch, capsys, stdin="Open the file\nAnd then?\n")
    _, printed, _ = chat([*args, "--no-stream"], monkeypatch, capsys, stdin="Open the file\nAnd then?\n")
    _, other_seed, _ = chat([*args[:-1], "4", "--no-stream"], monkeypatch, capsys, stdin="Open the file\n")
    assert streamed == printed
    assert not printed.startswith(other_seed)  # sampling really happened (and the seed decides it)


def test_streaming_shows_the_answer_while_it_is_generated(checkpoint, monkeypatch, capsys):
    """The text reaches stdout before generate() returns (TextStreamer), not only at the end."""
    from transformers import TextStreamer

    pieces_before_end = []
    original = TextStreamer.on_finalized_text

    def spy(self, text, stream_end=False):
        if not stream_end:
            pieces_before_end.append(text)
        original(self, text, stream_end)

    monkeypatch.setattr(TextStreamer, "on_finalized_text", spy)
    status, out, _ = chat([checkpoint, "--prompt", "Open the file", "--greedy", "--max-new-tokens", "20"],
                          monkeypatch, capsys)
    assert status == 0 and pieces_before_end and out.startswith("".join(pieces_before_end))


def test_long_conversations_drop_the_oldest_exchange_to_fit_the_context(checkpoint):
    model, tokenizer = load(checkpoint)
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=20, do_sample=False)
    words = "open the file and read it "
    for _ in range(4):
        session.reply(words * 2)
    limit = model.config.max_position_embeddings
    assert session.messages[0]["role"] == "system"
    assert session.render(session.messages)["input_ids"].shape[1] <= limit  # answers included, it still fits
    assert len(session.messages) < 1 + 2 * 4  # something was dropped ...
    kept = list(session.messages)
    with pytest.raises(ValueError, match="too long"):
        session.reply(words * 40)  # ... but one message longer than the context is refused
    assert session.messages == kept


# ------------------------------------------------------------------------------------------------------------ errors


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_checkpoint_that_is_not_a_causal_lm_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.json").write_text('{"architectures": ["ScratchBertForMaskedLM"], "model_type": "x"}')
    status, _, err = chat([tmp_path, "--prompt", "hi"], monkeypatch, capsys)
    assert status == 2 and "causal language model" in one_error_line(err)


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    """A tiny GPT-2 checkpoint as `scratchformers convert` writes one from a `train clm` model: architectures
    ["GPT2LMHeadModel"] (a causal LM whose class name does not end in ForCausalLM), with a chat-template tokenizer."""
    from scratchformers.convert import main as convert

    ours = tmp_path_factory.mktemp("gpt-ours")
    tokenizer = chat_tokenizer()
    torch.manual_seed(0)
    config = ScratchGPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                              max_position_embeddings=64, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    ScratchGPTForCausalLM(config).save_pretrained(ours)
    tokenizer.save_pretrained(ours)
    folder = tmp_path_factory.mktemp("gpt2") / "hf"
    assert convert([str(ours), str(folder)]) == 0
    return folder


@pytest.mark.parametrize("command", [
    ["chat", "--prompt", "hi"],
    ["generate", "--prompt", "The module"],
    ["evaluate", "--file", str(DATA_DIR / "prose" / "validation.txt"), "--block-size", "16"],
])
def test_a_gpt2_folder_written_by_convert_is_a_causal_lm(hf_gpt2, monkeypatch, capsys, command):
    """`chat`, `generate` and `evaluate` take any causal LM folder: what AutoModelForCausalLM loads (transformers' own
    table), not only classes named …ForCausalLM."""
    assert '"GPT2LMHeadModel"' in (hf_gpt2 / "config.json").read_text()
    name, *flags = command
    status = main([name, str(hf_gpt2), *flags, *(["--max-new-tokens", "4"] if name != "evaluate" else [])])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "error" not in captured.err.lower()


def test_a_classifier_is_still_refused_by_chat_and_generate(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.json").write_text('{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2"}')
    status, _, err = chat([tmp_path, "--prompt", "hi"], monkeypatch, capsys)
    assert status == 2 and "causal language model" in one_error_line(err)


def test_empty_prompt_is_refused(checkpoint, monkeypatch, capsys):
    status, _, err = chat([checkpoint, "--prompt", "  "], monkeypatch, capsys)
    assert status == 2 and "--prompt is empty" in one_error_line(err)


def test_a_tokenizer_without_template_needs_chat_template_file(checkpoint, tmp_path, monkeypatch, capsys):
    plain = tmp_path / "plain"
    shutil.copytree(checkpoint, plain)
    for name in ("chat_template.jinja",):
        (plain / name).unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(plain)
    assert not tokenizer.chat_template, "the copy still carries a template: the test would not test anything"
    status, _, err = chat([plain, "--prompt", "hi"], monkeypatch, capsys)
    assert status == 2 and "--chat-template FILE" in one_error_line(err)

    template = tmp_path / "template.jinja"
    template.write_text(TEMPLATE)
    status, out, _ = chat([plain, "--prompt", "Open the file", "--greedy", "--max-new-tokens", "8",
                           "--chat-template", template], monkeypatch, capsys)
    _, with_own, _ = chat([checkpoint, "--prompt", "Open the file", "--greedy", "--max-new-tokens", "8"],
                          monkeypatch, capsys)
    assert status == 0 and out == with_own

    status, _, err = chat([plain, "--prompt", "hi", "--chat-template", tmp_path / "missing.jinja"], monkeypatch,
                          capsys)
    assert status == 2 and "no such file" in one_error_line(err)


@pytest.mark.parametrize(("template", "extra", "message"), [
    ("{% for m in messages %}{{ m['content'] }", [], "cannot render"),  # a Jinja syntax error
    (NO_SYSTEM, ["--system", "Be brief."], "no system role"),  # the template's own refusal
])
def test_a_template_that_cannot_render_is_one_error_line(checkpoint, tmp_path, monkeypatch, capsys, template,
                                                        extra, message):
    path = tmp_path / "t.jinja"
    path.write_text(template)
    status, _, err = chat([checkpoint, "--prompt", "hi", "--chat-template", path, *extra], monkeypatch, capsys)
    assert status == 2 and message in one_error_line(err)


def test_chat_help_answers_without_loading_a_model(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["chat", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--prompt", "--system", "--chat-template", "--temperature", "--top-k", "--top-p", "--greedy",
                 "--max-new-tokens", "--seed", "--no-stream"):
        assert flag in out


# ---------------------------------------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory):
    """A tiny random LlamaForCausalLM (GQA, untied) saved with a chat-template tokenizer."""
    folder = tmp_path_factory.mktemp("hf-llama")
    tokenizer = chat_tokenizer()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_converted_llama_folder_chats_like_hf_llama(hf_llama, tmp_path, monkeypatch, capsys):
    from scratchformers.convert import main as convert

    assert convert([str(hf_llama), str(tmp_path / "ours")]) == 0
    capsys.readouterr()
    assert AutoTokenizer.from_pretrained(tmp_path / "ours").chat_template == TEMPLATE
    status, out, _ = chat([tmp_path / "ours", "--prompt", "hi", "--greedy", "--max-new-tokens", "12"], monkeypatch,
                          capsys)
    assert status == 0
    hf_model, tokenizer = load(hf_llama)
    assert isinstance(hf_model, transformers.LlamaForCausalLM)
    expected = reference_answer(hf_model, tokenizer, [{"role": "user", "content": "hi"}], 12)
    assert expected.strip() and out == expected + "\n"


def test_convert_takes_a_hub_id(hf_llama, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from scratchformers.convert import main as convert

    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked["repo_id"] = repo_id
        return str(hf_llama)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert convert(["someone/tiny-llama", str(tmp_path / "ours")]) == 0
    assert asked["repo_id"] == "someone/tiny-llama"
    assert "LlamaForCausalLM → ScratchGPTForCausalLM" in capsys.readouterr().out
    assert AutoTokenizer.from_pretrained(tmp_path / "ours").chat_template == TEMPLATE


def test_convert_of_an_unreachable_hub_id_is_one_error_line(tmp_path, capsys):
    from scratchformers_cli import main as cli

    status = cli(["convert", "someone/not-on-this-machine", str(tmp_path / "out")])  # HF_HUB_OFFLINE=1 (conftest)
    err = capsys.readouterr().err
    assert status == 2 and "someone/not-on-this-machine" in one_error_line(err)
    assert not (tmp_path / "out").exists()
    status = cli(["convert", str(tmp_path / "no" / "such" / "folder"), str(tmp_path / "out")])
    assert status == 2 and "no such folder" in one_error_line(capsys.readouterr().err)


def test_convert_keeps_every_tokenizer_file_and_named_chat_templates(hf_llama, tmp_path, capsys):
    """SentencePiece models (Llama 2, Mistral: tokenizer.model) and named templates (additional_chat_templates/)
    travel too, byte for byte, both ways."""
    from scratchformers.convert import main as convert

    source = tmp_path / "hf"
    shutil.copytree(hf_llama, source)
    (source / "tokenizer.model").write_bytes(b"\x00sentencepiece model bytes\xff")
    (source / "additional_chat_templates").mkdir()
    (source / "additional_chat_templates" / "tool_use.jinja").write_text("{{ messages }}")
    assert convert([str(source), str(tmp_path / "ours")]) == 0
    assert convert([str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    capsys.readouterr()
    for out in ("ours", "back"):
        for name in ("tokenizer.model", "additional_chat_templates/tool_use.jinja", "tokenizer.json",
                     "tokenizer_config.json", "chat_template.jinja"):
            assert (tmp_path / out / name).read_bytes() == (source / name).read_bytes(), (out, name)


@pytest.mark.parametrize("command", ["chat", "generate"])
@pytest.mark.parametrize("flags,named", [
    (["--top-p", "2"], "--top-p"), (["--top-p", "0"], "--top-p"), (["--temperature", "0"], "--greedy"),
    (["--temperature", "-1"], "--temperature"), (["--top-k", "-3"], "--top-k"), (["--max-new-tokens", "0"],
                                                                                   "--max-new-tokens"),
])
def test_meaningless_decoding_flags_are_one_error_line(checkpoint, capsys, monkeypatch, command, flags, named):
    """A top-p above 1 would be ignored silently, a temperature of 0 fails inside generate() with transformers'
    wording: both are refused by flag name, as every other mistake, before the model loads."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main([command, str(checkpoint), "--prompt", "hi", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0]


@pytest.mark.parametrize("argv", [["chat", "--help"], ["train", "sft", "--help"], ["push", "--help"]])
def test_help_in_process_leaves_optional_packages_importable(argv, capsys, monkeypatch):
    """The light --help hides peft (a 6 s import) while it prints; a caller in the same process (a notebook, a test
    run) must find it again afterwards, or transformers' Trainer and model loading fail on "import of peft halted"."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        pytest.skip("peft is not installed")
    from scratchformers_cli import main as front

    monkeypatch.delitem(sys.modules, "peft", raising=False)  # as in a process that has not imported it yet

    with pytest.raises(SystemExit):
        front(argv)
    assert sys.modules.get("peft", "absent") is not None
    assert importlib.util.find_spec("peft") is not None
