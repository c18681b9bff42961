"""Offline evaluation of a trained encoder on frozen features: classification and dense tasks.

May import core, the components, diagnostics, config and training (it reads trained runs);
never studies or the entry points.

Usage::

    python -m levyjepa.eval RUN_DIR [key=value ...]

Rebuilds the encoder from ``RUN_DIR/config.yaml``, loads the latest checkpoint's weights (or
``checkpoint=PATH``), extracts the frozen pooled embeddings ``emb`` of the training split
(un-augmented: the test transform applied to the training items, ``DataSplits.train_eval``) and
of the test split, one view per image (or clip), and measures:

- **k-NN** (the weighted k-NN protocol of Z. Wu, Y. Xiong, S. X. Yu and D. Lin, "Unsupervised
  feature learning via non-parametric instance discrimination", CVPR 2018, as used by
  M. Caron et al., "Emerging properties in self-supervised vision transformers" (DINO),
  ICCV 2021): features are L2-normalised; each test feature takes the ``k`` training features
  of highest cosine similarity ``s_i``; neighbour ``i`` votes for its label with weight
  ``exp(s_i / temperature)``; the class with the largest total wins. Defaults ``k = 20``,
  ``temperature = 0.07``.
- **Linear probe**: features are standardised with the training split's mean and standard
  deviation; a multinomial logistic regression ``W x + b`` minimises the mean cross-entropy
  plus ``weight_decay / 2 * ||W||^2`` (bias not decayed) with full-batch L-BFGS (strong Wolfe
  line search, at most ``linear_steps`` iterations, from zero). Defaults
  ``weight_decay = 1e-4``, ``linear_steps = 300``. No hyper-parameter is tuned on the test split.

It also reports the effective rank of the test features (RankMe, participation ratio, smallest
per-dimension std; :mod:`levyjepa.diagnostics.representation`), the correlation dimension of
the first 2000 test features (Grassberger and Procaccia 1983;
:mod:`levyjepa.diagnostics.correlation_dimension`; ``null`` when the features have no spread)
and, when the run has a Lévy-sheet
prior, the mean Epps-Pulley statistic per orientation family of the test images' token fields
``tokens_proj`` against the prior's law (the channel rotation seeded by the checkpoint's
step); and draws the pictures of :mod:`levyjepa.diagnostics.pictures` into ``RUN_DIR/pictures``.
Results go to ``RUN_DIR/eval.json`` (atomically) and a one-line summary is printed.

Keys (``key=value``): ``checkpoint`` (a checkpoint folder), ``k``, ``temperature``,
``weight_decay``, ``linear_steps``, ``batch_size`` (feature extraction, default 256),
``device`` (``auto``, ``cpu``, ``cuda``), ``max_train`` (use the first N training items),
``pictures`` (``true``/``false``), ``out`` (the JSON file, default ``RUN_DIR/eval.json``),
``untrained`` (``true``: evaluate the recipe's freshly initialised encoder instead, seeded by
the recipe's ``seed``, into ``RUN_DIR/eval_untrained.json``: the baseline a trained encoder
must beat), ``progress`` (progress bars while features are extracted, default ``true``).
Any other dotted key overrides the run's recipe, e.g. ``data.root=/elsewhere/imagenette``.

Examples::

    python -m levyjepa.eval runs/quickstart-20260101-120000
    python -m levyjepa.eval runs/image_levy2d k=200 temperature=0.1 data.root=path/to/imagenette-160

Errors are printed as one line, exit status 2.

``task=`` chooses what is measured, one or several of ``classification`` (the default, above),
``segmentation``, ``propagation``, ``tracking`` (:mod:`levyjepa.eval.tasks`): the dense
protocols on generated data with exact ground truth, each also measured for the untrained
encoder and raw pixels (``baselines``). Their keys: ``features`` (``tokens`` or
``tokens_proj``), ``baselines`` (default ``true``), ``seg_train``, ``seg_test``,
``seg_iterations`` (segmentation probe), ``clips``, ``clip_frames`` (propagation and tracking),
``trackers`` (log the dense pictures to the recipe's trackers, default ``true``)::

    python -m levyjepa.eval RUN_DIR task=segmentation,propagation,tracking

The field's benchmarks, read in their own layouts (:mod:`levyjepa.eval.benchmark_tasks`):
``davis``, ``tapvid``, ``voc2012``, ``ade20k`` and ``video_classification``, each with
``data_root=PATH``; the source may also be an exported encoder or a recipe file with
``weights=PATH`` (:mod:`levyjepa.eval.encoder_sources`)::

    python -m levyjepa.eval RUN_DIR task=davis data_root=path/to/DAVIS

The package reads by task: :mod:`levyjepa.eval.features` (frozen features),
:mod:`levyjepa.eval.classification` (k-NN and the linear probe),
:mod:`levyjepa.eval.segmentation`, :mod:`levyjepa.eval.propagation`,
:mod:`levyjepa.eval.tracking` and :mod:`levyjepa.eval.video_tasks` (the dense protocols),
:mod:`levyjepa.eval.dense_features` (token fields, raw pixels),
:mod:`levyjepa.eval.dense_pictures`, :mod:`levyjepa.eval.tasks` (the task list and keys) and
:mod:`levyjepa.eval.command` (the run's evaluation and the command line).
"""

from levyjepa.eval.classification import knn_predict, linear_probe
from levyjepa.eval.command import (
    EVAL_FILE,
    UNTRAINED_EVAL_FILE,
    EvalConfig,
    evaluate_run,
    main,
    parse_overrides,
    summary_line,
)
from levyjepa.eval.features import extract_features

__all__ = [
    "EVAL_FILE",
    "UNTRAINED_EVAL_FILE",
    "EvalConfig",
    "evaluate_run",
    "extract_features",
    "knn_predict",
    "linear_probe",
    "main",
    "parse_overrides",
    "summary_line",
]
