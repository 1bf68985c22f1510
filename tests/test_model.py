"""Training, coding and the review queue, on a small slice of the real gold set with a real encoder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.model import (
    CalibratedModel,
    LabelConfig,
    RidgeScorer,
    best_thresholds,
    grouped_folds,
    platt,
    segment_labels,
)
from tests.conftest import ROOT, SUBSET

NEW = ROOT / "data" / "new_study"


@pytest.fixture(scope="module")
def trained(small_gold, tmp_path_factory):
    from pipeline.model import train_model
    from pipeline.params import load_params

    out = tmp_path_factory.mktemp("models") / "small"
    card = train_model([small_gold], out, load_params(small_gold / "params.yaml"))
    return out, card


@pytest.fixture(scope="module")
def coded(trained, small_gold, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    inputs = [NEW / "ns-02.txt", NEW / "ns-05.txt"]
    return out, inputs


def test_labels_from_spans():
    segments = pd.DataFrame(
        {
            "source": ["t.txt"] * 4,
            "start": [0, 20, 60, 100],
            "end": [18, 58, 98, 140],
            "role": ["interviewer", "participant", "participant", "participant"],
        }
    )
    codings = pd.DataFrame(
        {
            "source": ["t.txt", "t.txt", "t.txt", "t.txt"],
            "start": [0, 20, 70, 100],
            "end": [58, 45, 76, 110],
            "code": ["a", "b", "a", "b"],
            "coder": ["A", "A", "A", "B"],
        }
    )
    labels = segment_labels(segments, codings, ["a", "b"], ["A"], LabelConfig(0.5, 0.5))
    # interviewer segment never labelled; 25/38 of segment 2 covered by b and all of the span of a;
    # segment 3 holds the whole short span of a; coder B is not asked for
    assert labels.tolist() == [[0, 0], [1, 1], [1, 0], [0, 0]]
    strict = segment_labels(segments, codings, ["a", "b"], ["A"], LabelConfig(0.9, 1.01))
    assert strict.tolist() == [[0, 0], [1, 0], [0, 0], [0, 0]]  # only a segment wholly inside a span


def test_grouped_folds_never_split_a_transcript():
    groups = np.repeat([f"t{i}" for i in range(7)], 5)
    for train, test in grouped_folds(groups, 5):
        assert not set(groups[train]) & set(groups[test])


def test_thresholds_and_calibration_on_separable_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    Y = np.column_stack([(X[:, 0] > 1).astype(int), (X[:, 1] + X[:, 2] > 1.5).astype(int)])
    groups = np.repeat(np.arange(30), 10)
    model = CalibratedModel(lambda: RidgeScorer(1.0), 5).fit(X, Y, groups)
    proba = model.predict_proba(X)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert (model.predict(X) == Y).mean() > 0.9
    assert best_thresholds(np.array([[1], [0], [1], [0]]), np.array([[0.9], [0.2], [0.6], [0.5]]))[0] == 0.525
    assert platt(np.array([0.0]), np.array([1.0]), np.array([0.0]))[0] == 0.5


def test_train_writes_a_safe_model_folder(trained):
    folder, card = trained
    assert sorted(p.name for p in folder.iterdir()) == ["head.npz", "model.json"]
    with np.load(folder / "head.npz", allow_pickle=False) as head:
        saved = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        # passage embedding, context, question (512 each), then the codebook prior's 21 columns
        prior = 21 if saved["params"]["train"]["prior_weight"] else 0
        assert head["coef"].shape == (21, 3 * 512 + prior)
        assert ((head["thresholds"] > 0) & (head["thresholds"] < 1)).all()
    assert saved["codebook"]["id"] == "imri" and len(saved["codebook"]["impact_ids"]) == 21
    assert saved["encoder"]["id"] == "use-m3"
    assert saved["training_data"]["transcripts"] == len(SUBSET)
    assert len(saved["training_data"]["sha256"]) == 64
    assert "scikit-learn" in saved["libraries"]
    # six transcripts are little data, but a model that learned nothing would sit near 0
    assert 0.15 < saved["cv_metrics"]["macro_f1"] <= 1
    assert set(saved["cv_metrics"]["by_language"]) == {"en", "fr"}


def _keys(value) -> set[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    return {k for v in value for k in _keys(v)} if isinstance(value, list) else set()


def test_code_writes_segments_queue_summary_and_project(trained, coded, run_cli):
    model, _ = trained
    out, inputs = coded
    result = run_cli("code", *inputs, "--model", model, "--out", out)
    assert result.code == 0, result.err
    assert "segments to review" in result.out and "not queued:" in result.out
    steps = result.out.split("seconds: ")[1].split("\n")[0].split(", ")
    assert {"read", "segment", "embed", "classify", "write"} <= {step.split()[0] for step in steps}
    # timings stay out of the files (summary.json quotes passages, whose words may say "seconds": its keys are checked)
    timing_keys = {"seconds", "load", "read", "embed", "classify", "write", "waiting"}
    assert not timing_keys & _keys(json.loads((out / "summary.json").read_text(encoding="utf-8")))
    assert "read 2 transcripts (text 2)" in result.out.splitlines()  # the layouts read, as imri segment says
    segments = pd.read_csv(out / "segments.csv", keep_default_na=False)
    card = json.loads((model / "model.json").read_text(encoding="utf-8"))
    ids = card["codebook"]["impact_ids"]
    thresholds = np.load(model / "head.npz")["thresholds"]
    assert [f"p:{i}" for i in ids] == [c for c in segments.columns if c.startswith("p:")]
    interviewer = segments[segments.role == "interviewer"]
    assert len(interviewer) and (interviewer.codes == "").all()
    participant = segments[segments.role == "participant"]
    proba = participant[[f"p:{i}" for i in ids]].astype(float).to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    expected = [";".join(np.asarray(ids)[row >= thresholds - 5e-5]) for row in proba]
    assert participant.codes.tolist() == expected  # codes are exactly the impacts above their thresholds
    texts = {p.name: p.read_text(encoding="utf-8") for p in inputs}
    assert all(
        texts[s][a:b] == t
        for s, a, b, t in zip(segments.source, segments.start, segments.end, segments.text, strict=True)
    )
    queue = pd.read_csv(out / "review_queue.csv", keep_default_na=False)
    assert queue.priority.is_monotonic_decreasing
    queued = participant.needs_review.astype(str) == "True"
    flagged = set(participant[queued].segment_id)
    assert set(queue.segment_id) == flagged and len(queue) > 0
    assert all(len(s.split(" ; ")) == 3 for s in queue.suggestions)
    # whole passages (participant turns, cut into at most review.passage_segments): all queued or none is
    from pipeline.coding import ReviewConfig, passage_keys

    passages = passage_keys(participant, ReviewConfig().passage_segments)
    assert (queued.groupby(passages).nunique() == 1).all()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["participant_segments"] == len(participant)
    assert summary["sent_to_review"] == len(queue)
    review = summary["review"]
    assert review["queued_segments"] == len(queue)
    assert review["unreviewed_segments"] == len(participant) - len(queue)
    lengths = participant.end - participant.start
    share = lengths[queued].sum() / lengths.sum()
    assert review["queued_share_of_participant_text"] == pytest.approx(share, abs=1e-4) and share <= review["budget"]
    confidence = participant[~queued].confidence.astype(float).mean()
    assert review["unreviewed_mean_confidence"] == pytest.approx(confidence, abs=1e-4)
    coded_total = sum(impact["count"] for impact in summary["codes_per_impact"])
    assert coded_total == sum(len(c.split(";")) for c in participant.codes if c)


def test_trained_model_is_named_after_its_gold_set(trained, small_gold):
    """small_gold is a copy of bundled transcripts in a folder of its own: a team's gold set, not the bundled one."""
    _, card = trained
    assert card["name"] == f"imri-{small_gold.name}"
    assert "synthetic" not in card["note"] and repr(small_gold.name) in card["note"]


def test_outputs_name_the_codes_and_summarise_each_transcript(trained, coded, run_cli):
    """segments.csv and review_queue.csv name the codes beside their ids, in the transcript's language; summary.json
    counts each transcript (adding up to the run's counts) and gives each impact's most probable coded passages."""
    import re

    from pipeline.codebook import load_codebook

    out, inputs = coded
    if not (out / "summary.json").exists():
        assert run_cli("code", *inputs, "--model", trained[0], "--out", out).code == 0
    book = load_codebook()
    segments = pd.read_csv(out / "segments.csv", keep_default_na=False)
    by_source = zip(segments.source, segments.transcript_language, strict=True)
    language = {source: ("fr" if lang == "fr" else "en") for source, lang in by_source}
    assert set(language.values()) == {"en", "fr"}  # ns-02 is English, ns-05 French
    for source, codes, names in zip(segments.source, segments.codes, segments.code_names, strict=True):
        expected = [book.impact(c).name[language[source]] for c in codes.split(";") if c]
        assert (names.split("; ") if names else []) == expected
    assert {language[s] for s, names in zip(segments.source, segments.code_names, strict=True) if names} == {"en", "fr"}
    queue = pd.read_csv(out / "review_queue.csv", keep_default_na=False)
    for source, suggestions in zip(queue.source, queue.suggestions, strict=True):
        for suggestion in suggestions.split(" ; "):
            name, impact_id = re.fullmatch(r"(.+) \[(.+)\] \([01]\.\d\d\)", suggestion).groups()
            assert name == book.impact(impact_id).name[language[source]]

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    per = summary["per_transcript"]
    assert [t["source"] for t in per] == sorted({p.name for p in inputs})
    for key in ("segments", "participant_segments", "coded_segments", "sent_to_review"):
        assert sum(t[key] for t in per) == summary[key], key
    totals = {i["id"]: i["count"] for i in summary["codes_per_impact"]}
    for impact_id, count in totals.items():
        assert sum(c["count"] for t in per for c in t["codes_per_impact"] if c["id"] == impact_id) == count
    participant = segments[segments.role == "participant"]
    for t in per:
        mine = participant[participant.source == t["source"]]
        assert t["coded_segments"] == int((mine.codes != "").sum()) > 0
        assert all(c["name"] == book.impact(c["id"]).name[summary["names_language"]] for c in t["codes_per_impact"])

    texts = {p.name: p.read_text(encoding="utf-8") for p in inputs}
    confident = summary["confident_passages"]
    assert [entry["id"] for entry in confident] == book.impact_ids
    assert sum(len(entry["passages"]) for entry in confident) > 3
    for entry in confident:
        carrying = participant[participant.codes.str.split(";").map(lambda codes, i=entry["id"]: i in codes)]
        column = f"p:{entry['id']}"
        best = carrying.astype({column: float}).groupby(["source", "turn"])[column].max().sort_values(ascending=False)
        probabilities = [p["p"] for p in entry["passages"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert probabilities == pytest.approx(best.head(3).tolist())  # the most probable of the passages coded so
        for passage in entry["passages"]:
            text = texts[passage["source"]]
            assert 0 <= passage["start"] < passage["end"] <= len(text)
            assert " ".join(text[passage["start"] : passage["end"]].split()) == " ".join(passage["text"].split())


def test_tfidf_baseline_fits_without_convergence_warnings():
    """Labels the n-grams barely separate make liblinear stop at its iteration cap; the baseline says nothing."""
    import re
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from pipeline.model import TfidfLogRegScorer

    sentences = [
        s
        for path in sorted((ROOT / "data" / "gold" / "transcripts").glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        for s in re.split(r"(?<=[.?!])\s+", line)
        if len(s) > 3
    ]
    rng = np.random.default_rng(0)
    texts = np.asarray(sentences, dtype=object)[rng.choice(len(sentences), 3000, replace=False)]
    Y = np.zeros((3000, 2), dtype=int)
    for j in range(2):
        Y[rng.choice(3000, 300, replace=False), j] = 1  # random labels: no n-gram separates them
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        scorer = TfidfLogRegScorer().fit(texts, Y)
    assert scorer.decision(texts[:5]).shape == (5, 2)


def test_code_queues_at_most_the_budget_of_the_bundled_new_study(trained, tmp_path, run_cli):
    """imri code on the whole bundled new study queues at most review.budget of the participant text, in whole
    passages, and says what it left unreviewed."""
    from pipeline.coding import ReviewConfig, passage_keys

    budget = ReviewConfig().budget
    assert budget <= 0.20  # issue 22's target for the default
    out = tmp_path / "run"
    result = run_cli("code", NEW, "--model", trained[0], "--out", out)
    assert result.code == 0, result.err
    segments = pd.read_csv(out / "segments.csv", keep_default_na=False)
    participant = segments[segments.role == "participant"]
    queued = participant.needs_review.astype(str) == "True"
    lengths = participant.end - participant.start
    share = lengths[queued].sum() / lengths.sum()
    assert 0 < share <= budget
    assert queued.mean() < 0.5  # far from the 65% of segments queued before the budget
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    review = summary["review"]
    assert review["budget"] == budget
    passages = passage_keys(participant, ReviewConfig().passage_segments)
    assert review["queued_passages"] == len(set(passages[queued.to_numpy()]))
    assert review["queued_passages"] + review["unreviewed_passages"] == len(set(passages))
    assert review["queued_share_of_participant_text"] + review["unreviewed_share_of_participant_text"] == 1.0
    assert f"{review['queued_share_of_participant_text']:.1%} of participant text (review.budget {budget:.0%}" in (
        result.out
    )
    assert f"not queued: {review['unreviewed_segments']} segments in {review['unreviewed_passages']} passages" in (
        result.out
    )


def test_coded_project_codes_passages(trained, coded, run_cli):
    """coded.qdpx codes passages: each run of adjacent participant sentences of one turn that carry a code is
    one coding of that code, from the first sentence's start to the last one's end."""
    from pipeline.qdpx import read_qdpx

    out, inputs = coded
    if not (out / "coded.qdpx").exists():
        assert run_cli("code", *inputs, "--model", trained[0], "--out", out).code == 0
    project = read_qdpx(out / "coded.qdpx")
    segments = pd.read_csv(out / "segments.csv", keep_default_na=False)
    participant = segments[segments.role == "participant"].sort_values(["source", "start"])
    expected = []
    for code in sorted({c for codes in participant.codes for c in codes.split(";") if c}):
        run = None
        for r in participant.itertuples():
            carries = code in r.codes.split(";")
            if run and carries and (run[0], run[3]) == (r.source, r.turn):
                run = (run[0], run[1], r.end, run[3])
                continue
            if run:
                expected.append((run[0].removesuffix(".txt"), run[1], run[2], code))
            run = (r.source, r.start, r.end, r.turn) if carries else None
        if run:
            expected.append((run[0].removesuffix(".txt"), run[1], run[2], code))
    found = sorted((c.source.removesuffix(".txt"), c.start, c.end, c.code) for c in project.codings)
    assert found == sorted(expected) and len(found) > 0
    # passages, not sentences: some coding spans more than one sentence
    sentences = {(r.source.removesuffix(".txt"), r.start, r.end) for r in participant.itertuples()}
    assert any((s, a, b) not in sentences for s, a, b, _ in found)
    passages = pd.read_csv(out / "passages.csv", keep_default_na=False)
    turns = participant.groupby(["source", "turn"]).agg(start=("start", "min"), end=("end", "max"))
    assert sorted(zip(passages.source, passages.start, passages.end, strict=True)) == sorted(
        (s, a, b) for (s, _), (a, b) in zip(turns.index, turns.to_numpy(), strict=True)
    )
    assert passages.top1_p.ge(passages.top2_p).all() and passages.top1_name.str.len().gt(0).all()
    card = json.loads((out / "model.json").read_text())
    assert {c.coder for c in project.codings} == {f"imri model {card['name']} {card['version']}"}


def test_same_input_and_model_give_the_same_output(trained, tmp_path, run_cli):
    model, _ = trained
    runs = []
    for name in ("one", "two"):
        assert run_cli("code", NEW / "ns-06.txt", "--model", model, "--out", tmp_path / name).code == 0
        runs.append((tmp_path / name / "segments.csv").read_bytes())
    assert runs[0] == runs[1]


def test_zero_shot_needs_no_model(tmp_path, run_cli, small_gold):
    result = run_cli(
        "code", NEW / "ns-08.txt", "--zero-shot", "--out", tmp_path / "zs", "--params", small_gold / "params.yaml"
    )
    assert result.code == 0, result.err
    segments = pd.read_csv(tmp_path / "zs" / "segments.csv", keep_default_na=False)
    assert segments.codes.str.len().gt(0).any()
    assert json.loads((tmp_path / "zs" / "model.json").read_text())["name"] == "zero-shot"


def test_bad_model_folder_and_codebook(trained, tmp_path, run_cli):
    missing = run_cli("code", NEW / "ns-02.txt", "--model", tmp_path / "nope", "--out", tmp_path / "o")
    assert missing.code == 2 and "imri train" in missing.err and missing.err.count("\n") == 1
    other = tmp_path / "other.yaml"
    book = yaml.safe_load((ROOT / "configs" / "codebook" / "imri_v1.yaml").read_text(encoding="utf-8"))
    book["impacts"] = book["impacts"][:5]
    other.write_text(yaml.safe_dump(book, allow_unicode=True), encoding="utf-8")
    wrong = run_cli("code", NEW / "ns-02.txt", "--model", trained[0], "--codebook", other, "--out", tmp_path / "o")
    assert wrong.code == 2 and "trained with codebook imri" in wrong.err
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    result = run_cli("code", empty, "--model", trained[0], "--out", tmp_path / "o")
    assert result.code == 2 and f"{empty}: empty file" in result.err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    unknown = run_cli("train", "--gold", tmp_path, "--out", tmp_path / "m")
    assert unknown.code == 2 and "a gold set needs transcripts/ and codings.csv" in unknown.err


def test_embedding_cache_embeds_only_new_text(tmp_path):
    from pipeline.embed import EmbeddingCache, UseM3

    class CountingUse(UseM3):
        calls: list[int] = []

        def _encode(self, texts, batch_size, progress):
            self.calls.append(len(texts))
            return super()._encode(texts, batch_size, progress)

    encoder = CountingUse()
    first = EmbeddingCache(encoder, tmp_path).encode(["Je me sens mieux.", "I feel better.", "I feel better."])
    again = EmbeddingCache(encoder, tmp_path).encode(["I feel better.", "Something new here."])
    assert encoder.calls == [2, 1]
    assert np.allclose(first[1], again[0]) and np.allclose(np.linalg.norm(again, axis=1), 1, atol=1e-5)


def test_with_gold_puts_the_human_codings_in_the_project(trained, small_gold, tmp_path, run_cli):
    from pipeline.qdpx import read_qdpx

    transcript = small_gold / "transcripts" / "bc-02.txt"
    result = run_cli(
        "code", transcript, "--model", trained[0], "--out", tmp_path / "run", "--with-gold", small_gold / "codings.csv"
    )
    assert result.code == 0, result.err
    project = read_qdpx(tmp_path / "run" / "coded.qdpx")
    coders = {c.coder for c in project.codings}
    # a model trained on a gold set other than the bundled one is named after its folder
    assert "A" in coders and any(c.startswith(f"imri model imri-{small_gold.name} ") for c in coders)
    gold = pd.read_csv(small_gold / "codings.csv")
    assert sum(c.coder == "A" for c in project.codings) == int((gold.source == "bc-02.txt").sum())


ANSWERS = [
    "The peer support group changed how I see myself. I feel more confident now, and I speak up about what I need.",
    "The staff changed their practice too. They ask the tenants before they make decisions about the building.",
]
QUESTIONS = {
    "study": "What has been the impact of implementing the innovation, from your point of view?",
    "unrelated": "What did you have for breakfast this morning?",
    "leading": "Wouldn't you say the innovation mostly caused conflict and resistance among the staff?",
}


def test_participant_probabilities_never_depend_on_the_interviewer(trained, tmp_path, run_cli):
    """The same answers after the study's question, an unrelated one, a leading one and none: identical
    probabilities (the default model reads participant speech only)."""
    model, _ = trained
    probabilities = {}
    for name in [*QUESTIONS, "none"]:
        lines = []
        for answer in ANSWERS:
            if name != "none":
                lines.append(f"Interviewer: {QUESTIONS[name]}")
            lines.append(f"Participant: {answer}")
        folder = tmp_path / name
        folder.mkdir()
        (folder / "interview.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = run_cli("code", folder, "--model", model, "--out", tmp_path / f"run-{name}")
        assert result.code == 0, result.err
        segments = pd.read_csv(tmp_path / f"run-{name}" / "segments.csv", keep_default_na=False)
        participant = segments[segments.role == "participant"]
        assert participant.text.str.cat(sep=" ") == " ".join(ANSWERS)
        probabilities[name] = participant.filter(like="p:").astype(float).to_numpy()
    for name, values in probabilities.items():
        assert np.abs(values - probabilities["none"]).max() <= 1e-6, name


def test_interviewer_context_is_a_named_option_and_moves_the_codes(small_gold, tmp_path):
    """With ``train.interviewer_context`` (off by default) the interviewer's words reach the features:
    the invariance above comes from the default, not from the questions being ignored by accident."""
    from pipeline.codebook import load_codebook
    from pipeline.evaluate import shift_interviewer
    from pipeline.ingest import SegmentConfig
    from pipeline.model import ClassifierConfig, load_gold, model_features

    gold = load_gold([small_gold], load_codebook(), SegmentConfig(), LabelConfig(), ["A"])
    table = gold.segments[gold.segments.source == gold.segments.source.iloc[0]].reset_index(drop=True)
    shifted = shift_interviewer(table, "unrelated")
    participant = (table.role == "participant").to_numpy()
    assert ClassifierConfig().interviewer_context is False
    for reads_interviewer in (False, True):
        config = ClassifierConfig(interviewer_context=reads_interviewer, question_weight=0.0, prior_weight=0.0)
        before = model_features(table, "use-m3", config)[participant]
        after = model_features(shifted, "use-m3", config)[participant]
        assert (np.abs(before - after).max() > 1e-3) == reads_interviewer
