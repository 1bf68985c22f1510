"""The report's glossary: each term the page uses, defined in the researcher's words, and its links.

GLOSSARY holds the terms (a Term each); link_terms links the first use of each term in each section of
the page to its definition. SETTINGS says what each training setting of params.yaml does, for the
variants table (setting links a setting's name) and the glossary."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """A glossary entry: its anchor (``#g-<slug>``), its name, its definition (HTML) and the phrases
    that use it in the page (a regular expression; the first use in each section links here)."""

    slug: str
    name: str
    text: str
    uses: str


#: What each training setting of ``params.yaml`` (``train``) does, for the variants table and the glossary.
SETTINGS = {
    "encoder": "the sentence encoder that turns text into vectors (<code>e5-small</code>, <code>use-m3</code>, "
    "<code>minilm-en</code>; <code>-int8</code>: its 8-bit version, <code>-ft</code>: fine-tuned on the gold set)",
    "head": "the classifier on the encoder's vectors: <code>ridge</code> (ridge regression on &plusmn;1 targets) or "
    "<code>logreg</code> (logistic regression)",
    "alpha": "the ridge head's regularisation strength (larger: smoother); not Krippendorff's alpha",
    "C": "the logistic-regression head's inverse regularisation strength",
    "class_weight": "<code>balanced</code>: segments of rare impacts weigh more in training",
    "context_weight": "weight of the mean vector of the neighbouring participant segments in a segment's features",
    "question_weight": "weight of the interviewer question's vector in a segment's features (0: the question is "
    "not read)",
    "question_augment": "also train on each segment with the interview guide's generic question, and with none",
    "codebook_weight": "weight of the similarity to the codebook's texts as extra features (0: not used)",
    "codebook_examples": "the codebook's definitions and include hints are training examples of their impacts",
    "turn_smoothing": "<i>s</i> in <i>p</i> &larr; (1 &minus; <i>s</i>) <i>p</i> + <i>s</i> &middot; (highest "
    "<i>p</i> in the turn): a segment takes part of its turn's strongest evidence, as coders code passages",
    "cv_folds": "folds of the cross-validation by transcript inside training, whose out-of-fold scores fit the "
    "Platt scaling and the cut-offs",
    "min_positives": "impacts with fewer coded training segments get no head (probability 0)",
    "interviewer_context": "<code>true</code>: a segment's context also takes in interviewer turns, so the "
    "interviewer's words move the codes",
    "sentence_weight": "passage scoring: weight of the sentence's own vector",
    "window_weight": "passage scoring: weight of the windows of consecutive sentences of its turn that hold it",
    "turn_weight": "passage scoring: weight of its whole turn",
    "window_sentences": "passage scoring: sentences per window",
    "prior_weight": "the codebook prior's share of the score (0: the trained head alone, 1: the prior alone)",
    "coders": "whose codings are the training labels",
}


GLOSSARY = (
    Term(
        "segment",
        "Segment, turn",
        "A <b>turn</b> is one speaker's uninterrupted talk; a <b>segment</b> is the unit the model codes, here a "
        "sentence of a participant turn (<code>segment.unit</code>). Interviewer turns are never coded.",
        r"\bsegments?\b|\bturns?\b",
    ),
    Term(
        "passage",
        "Coded passage",
        "A stretch of text one coder marked with one or more codes (coders code passages, not sentences).",
        r"\bcoded passages?\b|\bpassages?\b",
    ),
    Term(
        "coders",
        "Coder A, coder B",
        "The two coders of the data sheet (<code>data/DATASHEET.md</code>): coder A coded every transcript and is "
        "the reference the model learns from and is scored against; coder B coded a subset again, independently, "
        "so that human agreement can be measured.",
        r"\b[Cc]oders? [AB]\b|\b[Cc]oders A and B\b",
    ),
    Term(
        "consensus",
        "Model vs consensus",
        "The model compared with the codes that coder A and coder B <i>both</i> applied to a segment (the "
        "agreement code's consensus: a code counts only where both coders gave it), on the double-coded "
        "transcripts.",
        r"\bconsensus\b",
    ),
    Term(
        "gold-set",
        "Gold set",
        "Transcripts coded by people, from which the model learns. The bundled one is synthetic.",
        r"\bgold(?:-set| set)\b",
    ),
    Term(
        "transfer-set",
        "Transfer set",
        "A second coded corpus the model never trains on, written without the codebook and coded afterwards by "
        "coder A and coder B: a check of how the model does on text it was not written for. Synthetic too.",
        r"\btransfer(?:-set| set)\b",
    ),
    Term(
        "cv",
        "Cross-validation by transcript",
        "Each transcript is coded by a model trained on the other transcripts only, so no score comes from text "
        "the model saw.",
        r"\bcross-validat\w+",
    ),
    Term(
        "out-of-fold",
        "Out of fold",
        "A figure or score for a transcript from the model of the cross-validation fold that did not train on it.",
        r"\bout[ -]of[ -]fold\b",
    ),
    Term(
        "precision",
        "Precision, recall",
        "Precision: of the codes the model gave, the share coder A also gave. Recall: of the codes coder A gave, "
        "the share the model found.",
        r"\b[Pp]recision\b|\b[Rr]ecall\b",
    ),
    Term(
        "f1",
        "F1",
        "The harmonic mean of precision and recall, from 0 (no overlap) to 1 (the same codes).",
        r"(?<![\w-])F1\b",
    ),
    Term(
        "macro-f1",
        "Macro-F1, micro-F1",
        "<b>Macro-F1</b> averages F1 over impacts (each impact counts the same); <b>micro-F1</b> pools every "
        "(segment, impact) decision (frequent impacts count more). <i>Segment</i> macro-F1 scores segments, "
        "<i>character</i> macro-F1 the characters of participant text (so coding units of different sizes compare).",
        r"\b[Mm]acro-F1\b|\b[Mm]icro-F1\b",
    ),
    Term(
        "kappa",
        "Cohen's kappa",
        "Agreement between two coders beyond what chance would give: 0 = chance, 1 = identical. Here averaged "
        "over impacts, each impact a yes/no decision per segment. Low kappa with high % agreement is usual for "
        "rare codes: most segments are agreed 'not this impact'.",
        r"\bkappa\b",
    ),
    Term(
        "alpha",
        "Krippendorff's alpha",
        "Another chance-corrected agreement statistic (0 = chance, 1 = perfect), which allows any number of coders "
        "and missing codings; for two coders on yes/no codes it is close to kappa. <code>imri agreement</code> "
        "reports it.",
        r"\b[Kk]rippendorff\S* alpha\b",
    ),
    Term(
        "ci",
        "95% interval",
        "A bootstrap interval: the figure recomputed on 1,000 resamples of whole transcripts (so segments of one "
        "interview stay together); 95% of the resampled figures lie inside it.",
        r"95% (?:bootstrap )?intervals?",
    ),
    Term(
        "calibration",
        "Calibration",
        "Whether the probabilities mean what they say: of the (segment, impact) pairs given 0.8, about 80% should "
        "have the impact.",
        r"\b[Cc]alibrat\w+",
    ),
    Term(
        "ece",
        "ECE (expected calibration error)",
        "The gap between mean probability and observed rate in each probability bin, averaged with each bin "
        "weighted by its share of the decisions; 0 = perfect. Because most decisions are near 0, a small ECE can "
        "hide large gaps in the sparse middle bins: read the gap per bin too.",
        r"\bECE\b|\bexpected calibration error\b",
    ),
    Term(
        "gap",
        "Calibration gap of a bin",
        "Mean predicted probability minus observed rate in a probability bin: above 0, the model is "
        "<i>over-confident</i> there (its probabilities overstate how often coder A coded the impact); below 0, "
        "<i>under-confident</i>.",
        r"\bgap\b|\bover-confident\b|\bunder-confident\b",
    ),
    Term(
        "platt",
        "Platt scaling",
        "How the model turns its raw scores into probabilities: one logistic curve per impact, <i>p</i> = 1 / (1 + "
        "exp(&minus;(<i>a</i>&middot;score + <i>b</i>))), fitted on out-of-fold scores of the gold set.",
        r"\bPlatt(?: scaling)?\b",
    ),
    Term(
        "cutoff",
        "Cut-off",
        "Per impact, the probability at or above which the model gives the code, chosen on the gold set to "
        "maximise that impact's F1.",
        r"\bcut-offs?\b",
    ),
    Term(
        "confidence",
        "Confidence",
        "Per segment, how far its least certain impact decision is from that impact's cut-off, from 0.5 (on a "
        "cut-off) to 1 (every decision clear-cut).",
        r"\b[Cc]onfiden(?:ce|t)\b",
    ),
    Term(
        "review-queue",
        "Review queue",
        "The segments <code>imri code</code> sends to a person: those whose least certain decision lies within "
        "<code>review.margin</code> of its cut-off (a decision's certainty is 0 at its cut-off and 1 at probability "
        "0 or 1), plus rare impacts and close pairs.",
        r"\b(?:review )?queue\b",
    ),
    Term(
        "review-threshold",
        "Coverage, review threshold",
        "The confidence below which a segment goes to a person (<code>review.margin</code> = 2 &times; "
        "confidence &minus; 1). <b>Coverage</b>: the share of segments accepted without review, the most confident "
        "first; more coverage saves review time and lets more errors through.",
        r"\b[Rr]eview threshold\b|\b[Cc]overage\b|\bauto-accept\w*",
    ),
    Term(
        "encoder",
        "Encoder",
        "The pretrained multilingual sentence model that turns each text into a vector; only the head on top is "
        "trained on the gold set (unless fine-tuned).",
        r"\bencoders?\b",
    ),
    Term(
        "head",
        "Head (ridge, logistic regression)",
        "The classifier trained on the encoder's vectors, one per impact. A <b>ridge head</b> is ridge regression "
        "(least squares with a penalty on large weights) on &plusmn;1 targets; its scores become probabilities by "
        "Platt scaling.",
        r"\b(?:ridge|logreg) head\b|\bhead\b",
    ),
    Term(
        "turn-smoothing",
        "Turn smoothing",
        "After Platt scaling, each segment's probability moves towards the highest of its turn: <i>p</i> &larr; "
        "(1 &minus; <i>s</i>) <i>p</i> + <i>s</i> &middot; max over the turn (setting <code>turn_smoothing</code> = "
        "<i>s</i>), because coders code passages that span sentences.",
        r"\b[Tt]urn smoothing\b",
    ),
    Term(
        "passage-scoring",
        "Passage scoring",
        "A participant sentence is scored on the weighted mean of its own vector, of the windows of consecutive "
        "sentences of its turn that hold it, and of its whole turn, so a code can rest on the passage around it.",
        r"\b[Pp]assage scoring\b",
    ),
    Term(
        "codebook-prior",
        "Codebook prior",
        "Similarity of a passage to each impact's codebook texts (name, definition, include hints) in the "
        "passage's language, blended with the trained head (<code>prior_weight</code>); alone, it is the "
        "zero-shot coder (<code>imri code --zero-shot</code>), which needs no gold set.",
        r"\b[Cc]odebook prior\b|\bzero-shot\b",
    ),
    Term(
        "top1",
        "Category top-1, impact top-1, impact top-3",
        "On coded passages: the share whose first-ranked impact lies in a category the coder used there "
        "(category top-1), is one the coder used (impact top-1), or with one of the coder's impacts among the "
        "first three (impact top-3).",
        r"\b(?:category|impact) top-[13]\b|\btop-[13]\b",
    ),
    Term(
        "turn-top1",
        "Turn top-1 / top-3",
        "On participant turns coder A coded with exactly one impact: the share where the model's most probable "
        "impact (highest over the turn's segments) is that impact (top-1), or among its three most probable "
        "(top-3); category top-1: the same for the impact's category.",
        r"\b[Tt]urn top-1\b",
    ),
    Term(
        "presence-auc",
        "Presence AUC",
        "How well a participant sentence's highest probability (over impacts) tells whether coder A coded it at "
        "all: the chance that a coded sentence scores above an uncoded one (area under the ROC curve); 0.5 is "
        "chance, 1 perfect.",
        r"\b[Pp]resence (?:AUC|auc)\b",
    ),
    Term(
        "passage-score",
        "Passage score",
        "The figure the default is chosen by: the mean, over languages, of category top-1, impact top-1, impact "
        "top-3 and presence AUC on the transfer set's coded passages.",
        r"\b[Pp]assage score\b",
    ),
    Term(
        "interviewer-shift",
        "Interviewer shift",
        "The transfer set scored again with every interviewer turn replaced by the interview guide's question, an "
        "unrelated question or a leading one, or removed: the largest change of a participant probability shows "
        "how much the codes depend on what the interviewer said.",
        r"\binterviewer shift(?:ed)?\b",
    ),
    Term(
        "variant",
        "Variant",
        "A named set of changes to the training settings (<code>evaluate.variants</code> in "
        "<code>params.yaml</code>), trained on the gold set and judged on the transfer set.",
        r"\b[Vv]ariants?\b",
    ),
    Term(
        "int8",
        "int8, fp32",
        "The encoder's weights as 8-bit integers (int8: faster, smaller) or 32-bit floating point (fp32: as "
        "published).",
        r"\bint8\b",
    ),
    Term(
        "baseline",
        "Baseline",
        "A simpler method the model should beat: word overlap with coded text (as NVivo's coding patterns), "
        "TF-IDF + logistic regression, or zero-shot from the codebook alone.",
        r"\b[Bb]aselines?\b",
    ),
    Term(
        "targets",
        "Targets",
        "The project's own acceptance targets for the transfer evaluation, set in its issues (the model issue, 21) "
        "as bounds the project chose for itself: not a published standard, and not a claim about your data.",
        r"\b(?:transfer )?[Tt]argets\b",
    ),
    Term(
        "settings",
        "Training settings",
        "The <code>train</code> section of <code>params.yaml</code>; a variant changes some of them:<dl>"
        + "".join(f"<dt id='g-setting-{k}'><code>{k}</code></dt><dd>{v}</dd>" for k, v in SETTINGS.items())
        + "</dl>",
        r"\btraining settings\b",
    ),
)


#: Elements whose text never takes a glossary link (headings read as titles, links cannot nest).
NO_LINKS = {"a", "h1", "h2", "h3", "nav", "title", "style", "dt", "code"}


def link_terms(page: str) -> str:
    """Link the first use of each glossary term in each section to its definition (``#g-<slug>``).

    Text inside headings, links, navigation and code is left alone, and so is the glossary itself.
    Where two terms match at the same place the longer wins (``passage score`` over ``passage``).
    """
    uses = [(term.slug, re.compile(term.uses, re.IGNORECASE)) for term in GLOSSARY]
    out, inside, linked = [], [], set()
    parts = re.split(r"(<[^>]+>)", page)
    for k, part in enumerate(parts):
        if part.startswith("<"):
            if re.match(r"<section id=.glossary.>", part):
                out.extend(parts[k:])
                break
            tag = re.match(r"</?([a-zA-Z0-9]+)", part)
            name = tag.group(1).lower() if tag else ""
            if name == "section" and not part.startswith("</"):
                linked = set()
            if name in NO_LINKS and not part.endswith("/>"):
                if part.startswith("</"):
                    if name in inside:
                        inside.remove(name)
                else:
                    inside.append(name)
            out.append(part)
            continue
        if inside or not part.strip():
            out.append(part)
            continue
        position, pieces = 0, []
        while True:
            found = [(m.start(), -len(m.group(0)), slug, m) for slug, rx in uses if (m := rx.search(part, position))]
            if not found:
                break
            _, _, slug, match = min(found, key=lambda f: (f[0], f[1]))
            pieces.append(part[position : match.start()])
            if slug in linked:
                pieces.append(match.group(0))
            else:
                linked.add(slug)
                pieces.append(f"<a href='#g-{slug}'>{match.group(0)}</a>")
            position = match.end()
        out.append("".join(pieces) + part[position:])
    return "".join(out)


def setting(name: str) -> str:
    """A training setting's name, linked to its definition in the glossary where there is one."""
    code = f"<code>{html.escape(name)}</code>"
    return f"<a href='#g-setting-{html.escape(name)}'>{code}</a>" if name in SETTINGS else code
