"""Text normalisation shared by the intent engine and the entity extractors.

Words are case-folded, accents dropped, chat spellings spelled out (``gmn`` → ``bagaimana``,
``tdk`` → ``tidak``, ``pls`` → ``please``) and, for Indonesian, reduced to a root by a light
affix stemmer (``pengembalian`` and ``mengembalikan`` → ``kembali``). The stemmer needs no
dictionary, so where a prefix hides the root's first letter (``meng`` + ``isi`` or ``meng`` +
``kirim``?) :func:`stems` gives both readings and the engine keeps both as features.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

__all__ = ["SLANG", "TEXT_VERSION", "normalize", "stem", "stems", "words"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: Chat spellings and their written form (Indonesian and English), applied word by word.
SLANG: dict[str, str] = {
    # Indonesian
    "gmn": "bagaimana", "gmna": "bagaimana", "gimana": "bagaimana", "bgmn": "bagaimana",
    "tdk": "tidak", "gak": "tidak", "ga": "tidak", "gk": "tidak", "nggak": "tidak",
    "ngga": "tidak", "enggak": "tidak", "engga": "tidak", "ndak": "tidak", "kagak": "tidak",
    "yg": "yang", "brp": "berapa", "brapa": "berapa", "sy": "saya", "aq": "aku", "gw": "saya",
    "gue": "saya", "dgn": "dengan", "dg": "dengan", "utk": "untuk", "untk": "untuk",
    "krn": "karena", "karna": "karena", "blm": "belum", "blum": "belum", "sdh": "sudah",
    "udh": "sudah", "udah": "sudah", "dah": "sudah", "bs": "bisa", "tlg": "tolong",
    "mksh": "terima kasih", "makasih": "terima kasih", "trims": "terima kasih",
    "jd": "jadi", "kalo": "kalau", "klo": "kalau", "kl": "kalau", "bgt": "banget",
    "aja": "saja", "aj": "saja", "org": "orang", "dr": "dari", "pd": "pada", "sm": "sama",
    "ato": "atau", "atw": "atau", "knp": "kenapa", "napa": "kenapa", "kpn": "kapan",
    "dmn": "dimana", "pengen": "ingin", "pgn": "ingin", "pingin": "ingin", "lg": "lagi",
    "hrs": "harus", "tgl": "tanggal", "bln": "bulan", "thn": "tahun", "rek": "rekening",
    "tf": "transfer", "trf": "transfer", "msh": "masih", "masi": "masih", "sampe": "sampai",
    "smp": "sampai", "bkn": "bukan", "emg": "memang", "gpp": "tidak apa apa", "skrg": "sekarang",
    "skr": "sekarang", "td": "tadi", "nih": "ini", "tuh": "itu", "gini": "begini",
    "gitu": "begitu", "kak": "kakak", "dtg": "datang",
    "kirimin": "kirim", "balikin": "kembali", "dibalikin": "kembali", "ngirim": "kirim",
    "nanya": "tanya", "nyari": "cari", "hp": "handphone",
    # English
    "pls": "please", "plz": "please", "thx": "thanks", "ty": "thanks", "u": "you", "ur": "your",
    "im": "i am", "cant": "cannot", "dont": "do not", "wont": "will not",
    "didnt": "did not", "doesnt": "does not", "isnt": "is not", "wasnt": "was not",
    "havent": "have not", "hasnt": "has not", "idk": "i do not know", "acc": "account",
    "acct": "account", "msg": "message", "asap": "as soon as possible", "b4": "before",
}  # fmt: skip

#: Changes whenever normalisation would give other words: part of the cached models' names.
TEXT_VERSION = "stem-1/" + hashlib.sha256(repr(sorted(SLANG.items())).encode()).hexdigest()[:12]

_PARTICLES = ("lah", "kah", "tah", "pun")
_POSSESSIVES = ("nya", "ku", "mu")
_SUFFIXES = ("kan", "an", "i")
_VOWELS = frozenset("aeiou")
_MIN_ROOT = 3
_MIN_PLAIN_ROOT = 4  # after di-, ber-, ter-: "berapa" and "terima" are roots


def normalize(text: str) -> str:
    """Case-folded, accents dropped, compatibility forms unified (full-width letters, ligatures)."""
    if text.isascii():  # most chat: nothing to decompose, and casefold is lower
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The normalised words of ``text``, chat spellings written out."""
    return list(_words(text) if len(text) <= _CACHED_TEXT else _tokenize(text))


# A message is tokenised by the keyword matcher and again by the engine: the second is free.
# Only chat-sized texts are kept: 1,024 long ones could hold a gigabyte.
_CACHED_TEXT = 1000


@functools.lru_cache(maxsize=1024)
def _words(text: str) -> tuple[str, ...]:
    return _tokenize(text)


def _tokenize(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for w in _WORD.findall(normalize(text)):
        out.extend(SLANG.get(w, w).split())
    return tuple(out)


def stem(word: str) -> str:
    """The most likely Indonesian root of ``word`` (``word`` itself when no affix comes off)."""
    return stems(word)[0]


def stems(word: str) -> tuple[str, ...]:
    """Every root reading of ``word``, most likely first; ``(word,)`` when nothing comes off.

    A light stemmer after Nazief and Adriani, without their dictionary: particles (``-lah``)
    and possessives (``-nya``) come off; then one prefix (``di-``, ``ter-``, ``ber-``,
    ``me(N)-``, ``pe(N)-``, and ``ke-`` with ``-an``), perhaps a second (``per-``, ``ber-``),
    and with a prefix off, a suffix (``-kan``, ``-an``, ``-i``); without one, only ``-kan``.
    """
    if len(word) <= 4 or not word.isalpha():
        return (word,)
    base = _strip_inflection(word)
    # With a prefix off, the suffix may or may not be one (menyimpan: simpan; penarikan: tarik).
    readings = [x for r in _strip_prefixes(base) for x in _strip_suffix(r)]
    if not readings:
        readings = [base[:-3] if base.endswith("kan") and len(base) >= 7 else base]
    seen = dict.fromkeys(r for r in readings if len(r) >= _MIN_ROOT)
    return tuple(seen)[:3] or (word,)


def _strip_inflection(word: str) -> str:
    for group in (_PARTICLES, _POSSESSIVES):
        for s in group:
            if word.endswith(s) and len(word) - len(s) >= _MIN_ROOT + 1:
                word = word[: -len(s)]
                break
    return word


def _strip_suffix(word: str) -> list[str]:
    """``word`` without its suffix, most likely first, then ``word`` as it is."""
    found = [word[: -len(s)] for s in _SUFFIXES if word.endswith(s) and len(word) - len(s) > 3]
    return found[:2] or [word]


def _strip_prefixes(word: str) -> list[str]:
    """The readings of ``word`` with its prefix off (and a second, ``per-``/``ber-``)."""
    found: list[str] = []
    for rest in _prefix_readings(word):
        for second in ("per", "ber"):
            if rest.startswith(second) and len(rest) - 3 >= _MIN_PLAIN_ROOT:
                rest = rest[3:]
                break
        found.append(rest)
    return found


def _prefix_readings(word: str) -> list[str]:
    """Roots left by removing one prefix, with the nasal's lost letter put back."""
    for nasal in ("me", "pe"):
        if not word.startswith(nasal):
            continue
        rest = word[2:]
        if rest.startswith("nge") and len(rest) <= 7:  # menge-/penge- before one syllable
            return [rest[3:], "k" + rest[2:]]
        if rest.startswith("ng"):
            tail = rest[2:]
            if tail[:1] in _VOWELS:
                # mengembalikan → kembali, mengambil → ambil: say both, 'k' first before e.
                return ["k" + tail, tail] if tail[0] == "e" else [tail, "k" + tail]
            return [tail]
        if rest.startswith("ny") and rest[2:3] in _VOWELS:
            return ["s" + rest[2:]]
        if rest.startswith("m"):
            tail = rest[1:]
            return ["p" + tail, tail] if tail[:1] in _VOWELS else [tail]
        if rest.startswith("n"):
            tail = rest[1:]
            return ["t" + tail, tail] if tail[:1] in _VOWELS else [tail]
        if nasal == "pe" and rest.startswith("r"):
            return [rest[1:]]
        if rest[:1] in ("l", "r", "w", "y"):
            return [rest]
        return []
    for prefix in ("ber", "ter", "di"):
        if word.startswith(prefix) and len(word) - len(prefix) >= _MIN_PLAIN_ROOT:
            return [word[len(prefix) :]]
    if word.startswith("ke") and word.endswith("an") and len(word) >= 8:
        return [word[2:]]
    return []
