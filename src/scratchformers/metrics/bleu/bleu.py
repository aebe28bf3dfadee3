"""BLEU (Papineni et al. 2002) computed by sacrebleu, as a local 🤗 evaluate metric that needs no network.

Load it with ``scratchformers.metrics.load_metric("bleu")`` (or ``evaluate.load("<path to this folder>")``).
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """BLEU: the geometric mean of modified n-gram precisions (n = 1..4) times a brevity penalty, on a 0-100
scale, computed with sacrebleu's corpus_bleu (standard 13a tokenisation unless told otherwise)."""

_CITATION = """@inproceedings{papineni-etal-2002-bleu, title = "BLEU: a Method for Automatic Evaluation of Machine
Translation", author = "Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing", booktitle = "ACL",
year = "2002"}
@inproceedings{post-2018-call, title = "A Call for Clarity in Reporting BLEU Scores", author = "Post, Matt",
booktitle = "WMT", year = "2018"}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: list (one entry per prediction) of reference strings or of lists of reference strings; every
        prediction needs the same number of references.
    tokenize, lowercase, smooth_method, smooth_value, use_effective_order: passed to sacrebleu.corpus_bleu.
Returns:
    score, counts, totals, precisions, bp, sys_len, ref_len (as sacrebleu's BLEUScore).
"""


class Bleu(evaluate.Metric):
    """Corpus BLEU through sacrebleu."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(
        self,
        predictions,
        references,
        tokenize="13a",
        lowercase=False,
        smooth_method="exp",
        smooth_value=None,
        use_effective_order=False,
    ):
        references = [[r] if isinstance(r, str) else list(r) for r in references]
        n_refs = len(references[0]) if references else 1
        if any(len(r) != n_refs for r in references):
            raise ValueError("every prediction needs the same number of references")
        # sacrebleu wants one stream per reference position: [[ref1 of each sentence], [ref2 of each sentence], ...]
        streams = [[refs[i] for refs in references] for i in range(n_refs)]
        result = sacrebleu.corpus_bleu(
            predictions,
            streams,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            lowercase=lowercase,
            tokenize=tokenize,
            use_effective_order=use_effective_order,
        )
        return {
            "score": result.score,
            "counts": result.counts,
            "totals": result.totals,
            "precisions": result.precisions,
            "bp": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
        }
