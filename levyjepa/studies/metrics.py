"""What a study reads of a run's ``eval.json``: its metric values and its baselines.

Both read the file's latest view (:mod:`levyjepa.eval.results_file`): the newest result of each
task at the newest checkpoint, which in a study is the evaluation the study itself ran.
"""

from __future__ import annotations

from typing import Any

_OLD_FORMAT = {("knn", "top1"): "classification/knn_top1",
               ("linear", "top1"): "classification/linear_top1"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metrics_of(eval_json: dict[str, Any]) -> dict[str, float]:
    """The metric values of an ``eval.json``.

    Args:
        eval_json: The file's content.

    Returns:
        Its top-level numeric keys that contain a slash (``"segmentation/miou"``) when there
        are any; otherwise the older nested format mapped to those names: ``knn.top1`` to
        ``classification/knn_top1``, ``linear.top1`` to ``classification/linear_top1``.
    """
    found = {k: float(v) for k, v in eval_json.items() if "/" in k and _is_number(v)}
    if found:
        return found
    for (section, key), name in _OLD_FORMAT.items():
        value = eval_json.get(section, {})
        if isinstance(value, dict) and _is_number(value.get(key)):
            found[name] = float(value[key])
    return found


def baselines_of(eval_json: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``eval_json["baselines"]`` as ``kind -> metric -> value`` (numeric slash keys only)."""
    baselines = eval_json.get("baselines")
    if not isinstance(baselines, dict):
        return {}
    out = {kind: {k: float(v) for k, v in values.items() if "/" in k and _is_number(v)}
           for kind, values in baselines.items() if isinstance(values, dict)}
    return {kind: values for kind, values in out.items() if values}
