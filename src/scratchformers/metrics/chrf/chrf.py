"""chrF / chrF++ (Popović 2015, 2017) computed by sacrebleu, as a local 🤗 evaluate metric that needs no network.

Load it with ``scratchformers.metrics.load_metric("chrf")`` (or ``evaluate.load("<path to this folder>")``).
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """chrF: the character n-gram F-score (n = 1..6, recall weighted by beta = 2) on a 0-100 scale; with
word_order=2 it is chrF++. Computed with sacrebleu.CHRF."""

_CITATION = """@inproceedings{popovic-2015-chrf, title = "chrF: character n-gram F-score for automatic MT
evaluation", author = "Popovi{\\'c}, Maja", booktitle = "WMT", year = "2015"}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: list (one entry per prediction) of reference strings or of lists of reference strings; every
        prediction needs the same number of references.
    char_order, word_order, beta, lowercase, whitespace, eps_smoothing: passed to sacrebleu.CHRF.
Returns:
    score, char_order, word_order, beta.
"""


class Chrf(evaluate.Metric):
    """Corpus chrF through sacrebleu."""

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
        char_order=6,
        word_order=0,
        beta=2,
        lowercase=False,
        whitespace=False,
        eps_smoothing=False,
    ):
        references = [[r] if isinstance(r, str) else list(r) for r in references]
        n_refs = len(references[0]) if references else 1
        if any(len(r) != n_refs for r in references):
            raise ValueError("every prediction needs the same number of references")
        streams = [[refs[i] for refs in references] for i in range(n_refs)]
        scorer = sacrebleu.CHRF(
            char_order=char_order,
            word_order=word_order,
            beta=beta,
            lowercase=lowercase,
            whitespace=whitespace,
            eps_smoothing=eps_smoothing,
        )
        result = scorer.corpus_score(predictions, streams)
        return {"score": result.score, "char_order": char_order, "word_order": word_order, "beta": beta}
