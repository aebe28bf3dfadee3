"""The commands behind the `scratchformers` console command (demo, train, generate, chat, evaluate, attention,
translate, push, convert, serve, export). Parsing, `--help` and the one-line `error:` handling live in the light
top-level module `scratchformers_cli` (the entry point, `scratchformers_cli.main`), so that `--help` answers without
importing torch or any model; once a command really runs, it calls `run(args)` here, which does the work.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path


def _config(checkpoint: str) -> dict:
    """The checkpoint's config.json, or for a LoRA adapter folder (``train sft`` without ``--merge_lora``) its base
    model's (ValueError naming the folder if there is none, or naming the missing base)."""
    path = os.path.join(checkpoint, "config.json")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(checkpoint, "adapter_config.json")):
        from .sft import adapter_base

        base = adapter_base(checkpoint)
        path = os.path.join(base, "config.json")
        todo = ("put the base checkpoint there (or edit base_model_name_or_path in adapter_config.json), or save a "
                "plain checkpoint with `scratchformers train sft ... --merge_lora`")
        if not os.path.isdir(base):  # a Hub model id? its config from the Hub, when it can be reached
            from huggingface_hub import constants, hf_hub_download

            from .hub import hub_reachable

            if base.startswith((".", "/", "~")) or base.count("/") > 1 or "\\" in base:
                raise ValueError(f"{checkpoint!r} is a LoRA adapter on {base!r}, which is no folder here; {todo}")
            if constants.HF_HUB_OFFLINE or not hub_reachable():
                raise ValueError(f"{checkpoint!r} is a LoRA adapter on {base!r}: no such folder here, and the Hugging "
                                 f"Face Hub is not reachable to download it; {todo}")
            try:
                path = hf_hub_download(base, "config.json")
            except Exception as err:  # missing, gated, not an id: one line with the reason
                reason = " ".join(str(err).split())[:200] or type(err).__name__
                raise ValueError(f"{checkpoint!r} is a LoRA adapter on {base!r}, which the Hub does not give "
                                 f"({type(err).__name__}: {reason}); {todo}") from err
        if not os.path.isfile(path):
            raise ValueError(f"{checkpoint!r} is a LoRA adapter on {base!r}, a folder without config.json; {todo}")
    elif not os.path.isfile(path):
        raise ValueError(f"{checkpoint!r} is not a checkpoint folder (no config.json)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# What a checkpoint's model does, by transformers' own tables of the classes each Auto class loads (our registered
# classes are added to them when scratchformers is imported: pretrained.add_to_name_tables).
_KIND_TABLES = (("causal-lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "AutoModelForCausalLM"),
                ("masked-lm", "MODEL_FOR_MASKED_LM_MAPPING_NAMES", "AutoModelForMaskedLM"),
                ("sequence-classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
                 "AutoModelForSequenceClassification"))


def model_kinds(config: dict) -> set[str]:
    """What the model of a checkpoint's ``config.json`` (a dict) is, by its first ``architectures`` entry: a subset
    of {"causal-lm", "masked-lm", "sequence-classification"}, empty when it is none of them.

    The answer comes from transformers' own tables of the classes each Auto class loads
    (``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` …), which hold every native class (``GPT2LMHeadModel``, ``LlamaForCausalLM``)
    and, once scratchformers is imported, ours; a remote-code class in no table counts by the Auto class its
    ``auto_map`` names it under. Class-name suffixes are not a rule: ``GPT2LMHeadModel`` is a causal LM, and
    ``XLMWithLMHeadModel`` is in two tables."""
    from transformers.models.auto import modeling_auto

    import scratchformers  # noqa: F401  (puts our classes in the tables)

    architecture = (config.get("architectures") or [""])[0]
    auto_map = config.get("auto_map") or {}
    kinds = set()
    for kind, table, auto_class in _KIND_TABLES:
        names = {n for v in getattr(modeling_auto, table, {}).values() for n in ((v,) if isinstance(v, str) else v)}
        mapped = auto_map.get(auto_class)
        mapped = [mapped] if isinstance(mapped, str) else list(mapped or [])
        if architecture and (architecture in names or any(str(m).rsplit(".", 1)[-1] == architecture for m in mapped)):
            kinds.add(kind)
    return kinds


def _check_decoding(args: argparse.Namespace) -> None:
    """Refuse decoding flags that mean nothing, before the model loads (ValueError naming the flag): a temperature
    ≤ 0 (greedy is --greedy), top-k < 0 (0 = off), top-p outside (0, 1] (transformers silently ignores top-p > 1,
    and "Top-p must be a float > 0 and < 1" is its own check), max-new-tokens or num-beams < 1."""
    temperature, top_k, top_p = args.temperature, args.top_k, args.top_p
    if temperature is not None and not temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {temperature} (for greedy decoding pass --greedy)")
    if top_k is not None and top_k < 0:
        raise ValueError(f"--top-k must be a positive integer (0 = no top-k filter), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1] (1 = no nucleus filter), got {top_p}")
    if args.max_new_tokens is not None and args.max_new_tokens <= 0:
        raise ValueError(f"--max-new-tokens must be a positive integer, got {args.max_new_tokens}")
    if getattr(args, "num_beams", None) is not None and args.num_beams < 1:
        raise ValueError(f"--num-beams must be a positive integer, got {args.num_beams}")


def _generate(args: argparse.Namespace) -> int:
    """Print a continuation per prompt; a tqdm bar counts generated tokens. [MASK] prompts go to fill-mask."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, StoppingCriteria, StoppingCriteriaList, pipeline

    import scratchformers  # noqa: F401

    _check_decoding(args)
    config = _config(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    if config.get("is_encoder_decoder"):
        if importlib.util.find_spec("scratchformers.translate") is None:
            print("error: this is an encoder-decoder checkpoint; translation needs scratchformers.translate",
                  file=sys.stderr)
            return 2
        from transformers import AutoModelForSeq2SeqLM

        from .translate import translate

        model = AutoModelForSeq2SeqLM.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
        for source, target in zip(args.prompt, translate(args.prompt, model, tokenizer, num_beams=args.num_beams,
                                                          max_new_tokens=args.max_new_tokens)):
            print(f"{source}\n→ {target}")
        return 0
    architecture = (config.get("architectures") or [""])[0]
    kinds = model_kinds(config)
    if "masked-lm" in kinds and "causal-lm" not in kinds:
        without = [p for p in args.prompt if not tokenizer.mask_token or tokenizer.mask_token not in p]
        if without:
            raise ValueError(f"{args.checkpoint} is a masked language model: put {tokenizer.mask_token or '[MASK]'} "
                             f"where a word should be filled in (not in {without[0]!r})")
        fill = pipeline("fill-mask", model=args.checkpoint, tokenizer=tokenizer, trust_remote_code=True)
        for prompt in args.prompt:
            print(prompt)
            for guess in fill(prompt):
                print(f"  {guess['score']:.3f}  {guess['sequence']}")
        return 0
    if "causal-lm" not in kinds:
        raise ValueError(f"generate needs a causal LM, a masked LM or an encoder-decoder; {args.checkpoint} holds "
                         f"{architecture or 'no architecture'} (for a classifier use `scratchformers evaluate`)")

    class Progress(StoppingCriteria):
        """Advances a tqdm bar by one per generated token; never stops generation itself."""

        def __init__(self, bar: tqdm):
            self.bar = bar

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
            self.bar.update(1)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    from .sft import load_causal_lm
    from .translate import generate_command_settings

    model = load_causal_lm(args.checkpoint)  # a model folder, or a LoRA adapter on its base
    for prompt in args.prompt:
        torch.manual_seed(args.seed)
        inputs = tokenizer(prompt, return_tensors="pt")
        settings = generate_command_settings(model, args.max_new_tokens, args.greedy, args.temperature, args.top_k,
                                             args.top_p, args.num_beams)  # the checkpoint's generation_config first
        # The bar only on a terminal, where leave=False erases it and the text starts on a clean line; in a log or a
        # pipe (stdout and stderr often merged) its last `\r`-ended state would share a line with the text.
        with tqdm(total=settings.get("max_new_tokens"), desc="Generating", unit="tok", leave=False,
                  disable=not _is_terminal(sys.stderr)) as bar:
            output = model.generate(
                **inputs,
                **settings,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([Progress(bar)]),
            )
        print(tokenizer.decode(output[0], skip_special_tokens=True))
    return 0


def _chat(args: argparse.Namespace) -> int:
    """Chat with a causal LM (``scratchformers.chat.ChatSession``): one-shot with ``--prompt``, else one message a
    line from stdin until ``/exit`` or end of input (``/reset`` starts over). Replies stream to stdout token by
    token (transformers' ``TextStreamer``) unless ``--no-stream``. Mistakes that can be seen before loading the
    model (an empty prompt, a missing template file, a checkpoint that is not a causal LM, a tokenizer without a
    chat template) raise ValueError/FileNotFoundError first."""
    if args.prompt is not None and not args.prompt.strip():
        raise ValueError("--prompt is empty; give the message to answer")
    _check_decoding(args)
    template = None
    if args.chat_template is not None:
        path = Path(args.chat_template)
        if not path.is_file():
            raise FileNotFoundError(f"--chat-template {args.chat_template!r}: no such file (give a Jinja file)")
        template = path.read_text(encoding="utf-8")
    config = _config(args.checkpoint)
    architecture = (config.get("architectures") or [""])[0]
    if config.get("is_encoder_decoder") or "causal-lm" not in model_kinds(config):
        raise ValueError(f"chat needs a causal language model (a class AutoModelForCausalLM loads, such as "
                         f"…ForCausalLM or GPT2LMHeadModel); {args.checkpoint} holds {architecture or 'no architecture'}")
    if args.quantize is not None and importlib.util.find_spec("torchao") is None:
        raise ValueError(f'--quantize {args.quantize} needs torchao: pip install "scratchformers[quant]"')
    import torch
    from transformers import AutoTokenizer, TextStreamer

    import scratchformers  # noqa: F401

    from .chat import ChatSession, check_chat_template
    from .fast_decoding import column_major_weights, generate_settings, quantization_config
    from .sft import load_causal_lm
    from .translate import generate_command_settings

    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    if template is None and not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {args.checkpoint} has no chat template: pass --chat-template FILE (a "
                         "Jinja template, e.g. the chat_template.jinja of the model it was fine-tuned from)")
    check_chat_template(tokenizer, template, args.system)  # a broken template: one error line, before the model
    quantized = quantization_config(args.quantize) if args.quantize is not None else None
    model = load_causal_lm(args.checkpoint, quantized)  # a model folder, or a LoRA adapter on its base
    if args.column_major_weights:
        column_major_weights(model)
    settings = generate_command_settings(model, args.max_new_tokens, args.greedy, args.temperature, args.top_k,
                                         args.top_p)  # the checkpoint's generation_config first, as `generate`
    settings.update(generate_settings(args.static_cache, args.compile, model.device.type))
    session = ChatSession(model, tokenizer, system=args.system, chat_template=template, **settings)
    torch.manual_seed(args.seed)

    def answer(text: str) -> None:
        if args.no_stream:
            print(session.reply(text), flush=True)
        else:  # TextStreamer prints each finished word as it comes and a newline at the end
            session.reply(text, streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))

    if args.prompt is not None:
        answer(args.prompt)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print("Chatting with " + args.checkpoint + ": /reset starts over, /exit (or Ctrl-D) ends.", file=sys.stderr)
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:  # end of input
            return 0
        text = line.rstrip("\n")
        if text.strip() == "/exit":
            return 0
        if text.strip() == "/reset":
            session.reset()
            print("(conversation cleared)", file=sys.stderr)
            continue
        if not text.strip():
            continue
        try:
            answer(text)
        except ValueError as err:  # e.g. a message too long for the context: say so and keep the conversation
            if not interactive:
                raise
            print(f"error: {' '.join(str(err).split())}", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    """Print perplexity (causal LM), accuracy (sequence classifier) or the assistant-token loss (a chat model from
    ``train sft``, or any causal LM with a chat template scored on a ``.jsonl`` of chats) as JSON.

    Without --file it scores what the checkpoint was validated on in training (its ``training_data.json``: the
    validation file, or the same seeded held-out part of the training file), never some other data set.
    """
    from .examples import evaluate

    config = _config(args.checkpoint)
    kinds = model_kinds(config)
    classifier = "sequence-classification" in kinds
    if not classifier and "causal-lm" not in kinds:
        raise ValueError("evaluate supports causal LMs and sequence classifiers, not "
                         f"{(config.get('architectures') or ['?'])[0]}")
    record: dict = {}
    if args.file is not None:
        data, described = args.file, args.file
    else:
        data, described, record = evaluate.training_validation_data(args.checkpoint)
    if classifier:
        result = evaluate.accuracy(args.checkpoint, data, batch_size=args.batch_size,
                                   text_column=record.get("text_column", "text"),
                                   label_column=record.get("label_column", "label"))
    elif record.get("task") == "sft" or str(data).endswith((".jsonl", ".json")):  # chats: the assistant tokens
        result = evaluate.assistant_loss(args.checkpoint, data, batch_size=args.batch_size)
    else:
        result = evaluate.perplexity(args.checkpoint, data, block_size=args.block_size, batch_size=args.batch_size)
    print(json.dumps({"checkpoint": args.checkpoint, "file": described, **result}, indent=2))
    return 0


def _attention(args: argparse.Namespace) -> int:
    """Save the attention grid of ``--text`` for the checkpoint's model."""
    import transformers

    import scratchformers  # noqa: F401

    from . import viz

    config = _config(args.checkpoint)
    auto_map = config.get("auto_map", {})
    name = next((n for n in auto_map if n.startswith("AutoModelFor")), "AutoModel")
    model = getattr(transformers, name).from_pretrained(
        args.checkpoint, trust_remote_code=True, attn_implementation="eager"
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    path = viz.plot_attention(model, tokenizer, args.text, args.output, target_text=args.target, kind=args.kind)
    print(f"saved {path}")
    return 0


def _dispatch_passthrough(command: str, rest: list[str]) -> int:
    """`push` → scratchformers.examples.push_to_hub; `serve` → scratchformers.serve; `convert` →
    scratchformers.convert (if this install has it)."""
    if command == "push":
        from .examples.push_to_hub import main as push_main

        return push_main(rest, prog="scratchformers push")
    if command == "serve":
        from .serve import main as serve_main

        return serve_main(rest)
    if importlib.util.find_spec("scratchformers.convert") is None:
        print("error: `convert` needs scratchformers.convert, which this install does not have", file=sys.stderr)
        return 2
    from . import convert

    result = convert.main(rest)
    return result if isinstance(result, int) else 0


def _is_terminal(stream) -> bool:
    """Whether ``stream`` (e.g. ``sys.stderr``) is an interactive terminal."""
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@contextlib.contextmanager
def plain_log_messages() -> Iterator[None]:
    """While a command runs, strip ANSI colour codes from every log message unless stderr (where logs go) is a
    terminal. transformers colours its weight-loading report (MISSING/UNEXPECTED keys) when *stdout* is a terminal
    (older 5.x releases: always), so `scratchformers ... 2> log.txt` or a CI log otherwise gets raw `ESC[31m`
    codes. The previous log-record factory is restored afterwards."""
    if _is_terminal(sys.stderr):
        yield
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if "\x1b[" in str(record.msg) or any("\x1b[" in a for a in (record.args or ()) if isinstance(a, str)):
            record.msg, record.args = ANSI_ESCAPE.sub("", record.getMessage()), None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; user mistakes raise ValueError/FileNotFoundError (the caller prints one line).
    Log messages carry no colour codes unless stderr is a terminal (``plain_log_messages``)."""
    with plain_log_messages():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """``run`` without the log clean-up."""
    if args.command == "train":
        from .examples import load_script

        result = load_script(args.task)(args.rest)
        return result if isinstance(result, int) else 0
    if args.command in ("push", "convert", "serve"):
        return _dispatch_passthrough(args.command, args.rest)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(output_dir=args.output_dir, max_steps=args.max_steps, family=args.family, config=args.config,
                 seed=args.seed, overwrite=args.overwrite)
        return 0
    commands = {"generate": _generate, "chat": _chat, "evaluate": _evaluate, "attention": _attention,
                "translate": _translate_command}
    if args.command in commands:
        return commands[args.command](args)
    if args.command == "export":
        from .export import run_export

        return run_export(args)
    raise ValueError(f"unknown command {args.command!r}")


def _translate_command(args: argparse.Namespace) -> int:
    """Load model + tokenizer, translate the given texts (or stdin lines), print one translation a line."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from .translate import translate

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model, trust_remote_code=args.trust_remote_code)
    for line in translate(
        texts, model, tokenizer, batch_size=args.batch_size, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens
    ):
        print(line)
    return 0

