"""The short-answer reader: trained in torch, read in numpy with the same numbers, its span first in the answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rag import answer
from rag.query_encoder import QueryEncoder, read_safetensors
from rag.reader import READER_FILE, Reader, asked_kind, asks_fact, load_reader

SEED = next((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))
DECISION = "قطع العلاقات الدبلوماسية مع طهران"
QUESTION = "What did the Albanian government decide about Tehran?"


def _examples(tokens):
    """A few questions with their spans in sentences of the seed article, as `bench.train_reader` tokenises them."""
    from bench.train_reader import Example, tokenize

    text = SEED.read_text(encoding="utf-8")
    sentence = next(s for s in re.split(r"(?<=[.!؟])\s+", text) if DECISION in s)
    deadline = next(s for s in re.split(r"(?<=[.!؟])\s+", text) if "24 ساعة" in s)
    pairs = [
        (QUESTION, sentence, DECISION),
        ("ماذا قررت الحكومة الألبانية؟", sentence, DECISION),
        ("How long were the diplomats given?", deadline, "24 ساعة"),
        ("كم ساعة منحت الدبلوماسيين؟", deadline, "24 ساعة"),
    ]
    rows = []
    for q, passage, span in pairs:
        start = passage.index(span)
        rows.append(tokenize(tokens, Example(q, passage, start, start + len(span))))
        rows.append(tokenize(tokens, Example(q, "أعلنت وزارة الرياضة عن بطولة جديدة للشباب.", -1, -1)))
    return [r for r in rows if r is not None]


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory, model_dir) -> Path:
    """A one-layer reader trained on a few of the seed's questions (it learns them by heart: enough to show that
    what torch trains is what the chat reads)."""
    from bench.reader_torch import train_and_save

    folder = tmp_path_factory.mktemp("reader")
    config = json.loads((model_dir / "config.json").read_text())
    tokens = QueryEncoder(model_dir).tokens
    train_and_save(model_dir, config, _examples(tokens), folder / READER_FILE, 1, 60, 1e-3, 0)
    return folder


def test_numpy_reads_the_trained_layers_as_torch_computes_them(reader_dir, model_dir):
    import torch

    from bench.reader_torch import Layer, _bias

    encoder = QueryEncoder(model_dir)
    reader = Reader(encoder, reader_dir)
    config = json.loads((model_dir / "config.json").read_text())
    batch = encoder.tokens.encode(["منحت الحكومة الدبلوماسيين 24 ساعة للمغادرة."], "query: كم ساعة؟ passage: ")
    lower = encoder.run(batch, reader.layers[:-1])
    raw = read_safetensors(reader_dir / READER_FILE)
    top = Layer(raw, "encoder.layer.11.", int(config["num_attention_heads"]), float(config["layer_norm_eps"]))
    mask = torch.from_numpy(batch.attention_mask.astype(np.float32))
    with torch.no_grad():
        expected = top(torch.from_numpy(lower), _bias(mask)).numpy()
    assert np.allclose(encoder.run(batch, reader.layers), expected, atol=1e-4)


def test_a_built_reader_puts_the_span_first_at_exact_offsets(reader_dir, settings, seed_index):
    from rag.settings import Settings

    with_reader = Settings.from_env(model=settings.model, reader=reader_dir)
    a = answer(QUESTION, index_dir=seed_index, settings=with_reader)
    assert a.found and a.short and a.short["text"] == DECISION, a.text
    assert a.short["kind"] == "span" and a.short["by"] == "reader"
    assert a.text.splitlines()[0] == f"«{DECISION}» [{a.short['citation']}]"
    cited = next(c for c in a.citations if c.n == a.short["citation"])
    assert cited.start <= a.short["start"] < a.short["end"] <= cited.end
    # the recognisers alone have no answer for a "what did ... decide" question
    assert not answer(QUESTION, index_dir=seed_index, settings=settings).short
    # a why question gets no short answer, reader or not
    why = answer("Why did Albania cut diplomatic ties with Iran?", index_dir=seed_index, settings=with_reader)
    assert why.found and not why.short


def test_no_reader_or_a_damaged_one_leaves_the_recognisers(tmp_path, model_dir, capsys):
    encoder = QueryEncoder(model_dir)
    assert load_reader(encoder, tmp_path) is None  # not built: no word about it
    (tmp_path / READER_FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert load_reader(encoder, tmp_path) is None
    assert "short-answer reader not used" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("Who succeeded him?", True),
        ("How many pilgrims died?", True),
        ("How long were they given?", True),
        ("Why did Albania cut ties?", False),
        ("How did Iran respond?", False),
        ("لماذا قطعت ألبانيا العلاقات؟", False),
        ("كم ساعة منحت؟", True),
        ("ما سبب الحريق الذي اندلع في القرية؟", False),
        ("What caused the fire?", False),
    ],
)
def test_why_and_how_questions_are_not_fact_questions(question, fact):
    assert asks_fact(question) is fact


def test_a_share_or_a_number_of_is_an_amount():
    # the reader's span must then hold a number, or it is not given
    assert asked_kind("What share of road accidents is caused by human error?") == "number"
    assert asked_kind("ما عدد الحجاج هذا العام؟") == asked_kind("How many pilgrims?") == "number"
    assert asked_kind("What did the Albanian government decide?") == ""


def test_a_sure_reader_answer_is_shown_with_its_own_quote_alone(reader_dir, settings, seed_index, monkeypatch):
    import rag.chain
    from rag.settings import Settings
    from ui.render import sources_html

    with_reader = Settings.from_env(model=settings.model, reader=reader_dir)
    question = "ماذا قررت الحكومة الألبانية بشأن طهران؟ ومن المسؤول عن الهجوم السيبراني؟"
    monkeypatch.setattr(rag.chain, "ALONE_GATE", float("inf"))
    every = answer(question, index_dir=seed_index, settings=with_reader)
    assert every.short["by"] == "reader" and len(every.citations) > 1 and not every.more
    monkeypatch.setattr(rag.chain, "ALONE_GATE", float("-inf"))
    alone = answer(question, index_dir=seed_index, settings=with_reader)
    assert [c.n for c in alone.citations] == [alone.short["citation"]]
    assert sorted(c.n for c in alone.citations + alone.more) == sorted(c.n for c in every.citations)
    assert all(f"[{c.n}]" not in alone.text for c in alone.more)
    panel = sources_html(alone)
    assert f"More from the articles ({len(alone.more)})" in panel
    assert panel.count('<details class="source" open>') == 1


def _reader_decides(path: Path) -> Path:
    """The shipped refusal model with a `with_reader` that listens to the reader alone: answer when its score is
    above 5."""
    from rag.refusal import READER_FEATURES, RefusalModel

    plain = RefusalModel.load(Path(__file__).resolve().parent.parent / "rag" / "data" / "refusal.json")
    n = len(READER_FEATURES)
    plain.with_reader = RefusalModel(READER_FEATURES, [0.0] * n, [1.0] * n, [0.0] * (n - 1) + [1.0], -5.0, 0.5, 0.5)
    path.write_text(plain.to_json(), encoding="utf-8")
    return path


def test_with_a_reader_its_score_decides_between_answer_and_refusal(reader_dir, settings, seed_index, tmp_path):
    from rag.settings import Settings

    refusal = _reader_decides(tmp_path / "refusal.json")
    with_reader = Settings.from_env(model=settings.model, reader=reader_dir, refusal_model=refusal)
    learned = answer(QUESTION, index_dir=seed_index, settings=with_reader)
    assert learned.found and learned.confidence > 0.5, learned.text
    # The one-layer reader learned the seed's questions by heart: on a question it never saw, the first sentence
    # holds nothing it can point at, and that model refuses what the word features alone answer.
    other = "Who won the football match in Tirana?"
    assert not answer(other, index_dir=seed_index, settings=with_reader).found
    # without a reader, the plain model decides as before, whatever the file's `with_reader` says
    plain = Settings.from_env(model=settings.model, refusal_model=refusal)
    assert (
        answer(QUESTION, index_dir=seed_index, settings=plain).confidence
        == answer(QUESTION, index_dir=seed_index, settings=settings).confidence
    )


def test_the_decision_and_the_short_answer_read_the_first_sentence_once(reader_dir, model_dir, monkeypatch):
    reader = Reader(QueryEncoder(model_dir), reader_dir)
    calls = []
    real = reader._read
    monkeypatch.setattr(reader, "_read", lambda q, passages: calls.append(len(passages)) or real(q, passages))
    sentence = "منحت الحكومة الدبلوماسيين 24 ساعة للمغادرة."
    first = reader.read("كم ساعة منحت؟", [sentence])
    again = reader.read("كم ساعة منحت؟", [sentence, "أعلنت وزارة الرياضة عن بطولة جديدة للشباب."])
    assert calls == [1, 1] and again[0] == first[0] and again[1].passage == 1


def test_a_refusal_model_file_with_a_damaged_reader_part_names_the_fix(tmp_path):
    from rag.refusal import RefusalModel, RefusalModelError

    path = tmp_path / "refusal.json"
    data = json.loads(_reader_decides(path).read_text(encoding="utf-8"))
    for damage in ({"features": data["with_reader"]["features"][:-1]}, {"band": [0.3]}, {"band_cross": ["x", 1]}):
        path.write_text(json.dumps({**data, "with_reader": {**data["with_reader"], **damage}}), encoding="utf-8")
        with pytest.raises(RefusalModelError, match=re.escape("refit it with `python -m bench.calibrate`")):
            RefusalModel.load(path)


def test_outside_its_band_the_reader_is_not_run_and_the_plain_model_decides(
    reader_dir, settings, seed_index, tmp_path, monkeypatch
):
    """The cascade: the reader's model decides only the plain probabilities in its band; a question the word features
    answer confidently is answered by them without a reading, and the band survives the model file."""
    import rag.refusal
    from rag.refusal import RefusalModel
    from rag.settings import Settings

    path = _reader_decides(tmp_path / "refusal.json")
    plain = answer(QUESTION, index_dir=seed_index, settings=settings).confidence
    model = RefusalModel.load(path)
    model.with_reader.band_cross = (0.0, plain / 2)  # the question's plain probability lies above the band
    path.write_text(model.to_json(), encoding="utf-8")
    assert RefusalModel.load(path).with_reader.band_cross == (0.0, plain / 2)
    readings = []
    real = rag.refusal.reader_score
    monkeypatch.setattr(rag.refusal, "reader_score", lambda *a: readings.append(a[1]) or real(*a))
    cascade = Settings.from_env(model=settings.model, reader=reader_dir, refusal_model=path)
    other = "Who won the football match in Tirana?"  # refused by the reader's model above, when it decides
    a = answer(QUESTION, index_dir=seed_index, settings=cascade)
    assert a.found and a.confidence == plain and readings == []
    model.with_reader.band_cross = (0.0, 1.01)
    path.write_text(model.to_json(), encoding="utf-8")
    answer(
        other,
        index_dir=seed_index,
        settings=Settings.from_env(model=settings.model, reader=reader_dir, refusal_model=path),
    )
    assert readings == [other]
