"""Convert musicnn's shipped checkpoints into the arrays the tagger ships with.

Run once, with the ``musicnn`` 0.1.0 wheel installed (``pip install --no-deps
musicnn==0.1.0``): for each model, the checkpoint is read by the tagger's own reader, the
optimiser's slots are dropped (the network needs 64 tensors, 3.2 MB of float32), and the
rest is written to ``workers/core/tagging/weights/{name}.npz``; the SHA-256 printed goes
into ``workers/core/tagging/model.py`` (``SHIPPED``), which checks it at every load. The
weights are musicnn's (ISC licence, © Music Technology Group, Universitat Pompeu Fabra
2019, Jordi Pons): its notice is ``weights/LICENSE-musicnn.md``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from workers.core.tagging.checkpoint import read_bundle
from workers.core.tagging.model import locate_weights

OUT = Path(__file__).resolve().parent.parent / "workers" / "core" / "tagging" / "weights"


def convert(name: str) -> str:
    tensors = read_bundle(str(locate_weights(name)) + "/")
    kept = {k: np.asarray(v) for k, v in sorted(tensors.items()) if "/" in k and "Adam" not in k}
    buffer = io.BytesIO()
    # a fixed date and order, so the same checkpoint always gives the same bytes
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in kept.items():
            entry = zipfile.ZipInfo(key.replace("/", ".") + ".npy", date_time=(2019, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            array = io.BytesIO()
            np.lib.format.write_array(array, value, allow_pickle=False)
            archive.writestr(entry, array.getvalue())
    data = buffer.getvalue()
    (OUT / f"{name}.npz").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    for model in ("MSD_musicnn", "MTT_musicnn"):
        print(model, convert(model))
