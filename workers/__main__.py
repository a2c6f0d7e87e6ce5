import os

# One worker process per core: numpy's BLAS must not spawn threads of its own (their
# hand-offs cost more than the small matrix products of the feature engine save).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from workers.cli import main  # noqa: E402

raise SystemExit(main())
