"""The tags of the two shipped musicnn models, and which of them are genres and moods.

Labels are the models' own (``musicnn/configuration.py``), in output order. The split into
genres and moods is ours: the Million Song Dataset tags mix genres, moods, eras and
voices; MagnaTagATune's are mostly instruments and timbre, with few genres and no moods.
"""

from __future__ import annotations

__all__ = ["GENRES", "LABELS", "MOODS"]

_MSD = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
_MTT = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera",
    "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute",
    "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic",
    "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp",
    "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip

#: model name -> its tags, in output order
LABELS: dict[str, tuple[str, ...]] = {"MSD_musicnn": _MSD, "MTT_musicnn": _MTT}

GENRES: frozenset[str] = frozenset(
    {
        "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock",
        "jazz", "metal", "classic rock", "soul", "indie rock", "electronica", "folk", "punk",
        "blues", "hard rock", "ambient", "experimental", "Hip-Hop", "country",
        "easy listening", "funk", "electro", "heavy metal", "Progressive rock", "rnb",
        "indie pop", "House", "classical", "techno", "indian", "opera", "new age",
    }
)  # fmt: skip
MOODS: frozenset[str] = frozenset(
    {"beautiful", "chillout", "Mellow", "chill", "party", "sexy", "catchy", "sad", "happy",
     "slow", "fast", "soft", "quiet", "loud", "weird"}
)  # fmt: skip
