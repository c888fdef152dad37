"""Normalisation: Indonesian affixes come off, chat spellings are written out."""

from __future__ import annotations

import pytest

from qbot.intents import tokenize
from qbot.nlu import stem, stems, words


@pytest.mark.parametrize(
    ("word", "root"),
    [
        ("pengembalian", "kembali"),
        ("mengembalikan", "kembali"),
        ("dikembalikan", "kembali"),
        ("kembali", "kembali"),
        ("pembayaran", "bayar"),
        ("membayar", "bayar"),
        ("pembatalan", "batal"),
        ("membatalkan", "batal"),
        ("dikirim", "kirim"),
        ("terkirim", "kirim"),
        ("kirimkan", "kirim"),
        ("kartunya", "kartu"),
        ("memperbaiki", "baik"),
        ("kesalahan", "salah"),
        ("mengecek", "cek"),
    ],
)
def test_nlu_stem_takes_indonesian_affixes_off(word: str, root: str) -> None:
    assert stem(word) == root


@pytest.mark.parametrize("word", ["berapa", "terima", "transaksi", "refund", "order", "bantuan"])
def test_nlu_stem_leaves_roots_and_english_alone(word: str) -> None:
    assert stems(word) == (word,)


def test_nlu_stems_give_both_readings_where_a_prefix_hides_the_first_letter() -> None:
    assert set(stems("mengirim")) == {"kirim", "irim"}  # meng + kirim, or meng + irim?
    assert "tarik" in stems("penarikan")


def test_nlu_words_write_out_chat_spellings_and_fold_case_and_accents() -> None:
    assert words("Gmn cara REFUND yg tdk masuk, brp lama? Café") == [
        "bagaimana", "cara", "refund", "yang", "tidak", "masuk", "berapa", "lama", "cafe",
    ]  # fmt: skip
    assert words("pls refund, thx") == ["please", "refund", "thanks"]
    assert tokenize("Sy   udh TF") == ["saya", "sudah", "transfer"]
