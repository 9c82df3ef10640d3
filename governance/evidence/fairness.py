"""Bias reports computed by the service from a labelled sample, with fairlearn.

So that bias figures are not only self-declared, a caller can send the
predictions, labels and group membership of a sample; the service computes,
per protected attribute, the demographic parity difference, the disparate
impact ratio (fairlearn's ``demographic_parity_ratio``) and the equalized odds
difference, plus per-group rates, and records the result as a ``bias_report``
with the digest of the sample it was computed on.

fairlearn (and pandas) are imported on first use: they cost about a second,
which processes that never compute a report should not pay.
"""

from __future__ import annotations

import hashlib
import math

from ledger.canonical import canonical_bytes

from ..errors import InvalidRequestError

MIN_SAMPLE = 10


def compute_bias_metrics(y_true: list, y_pred: list, sensitive_features: dict[str, list]) -> dict:
    """Return the ``bias_report`` fields computed from a labelled binary sample."""
    import fairlearn
    from fairlearn.metrics import (
        MetricFrame, count, demographic_parity_difference, demographic_parity_ratio,
        equalized_odds_difference, false_positive_rate, selection_rate, true_positive_rate,
    )

    n = len(y_true)
    if n < MIN_SAMPLE:
        raise InvalidRequestError(f"the sample has {n} rows; at least {MIN_SAMPLE} are needed")
    if len(y_pred) != n:
        raise InvalidRequestError(f"y_pred has {len(y_pred)} values, y_true has {n}")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if any(v not in (0, 1) for v in values):
            raise InvalidRequestError(f"{name} must hold binary labels 0 or 1")
    if not sensitive_features:
        raise InvalidRequestError("sensitive_features needs at least one attribute")
    attributes = []
    for attribute, groups in sorted(sensitive_features.items()):
        if len(groups) != n:
            raise InvalidRequestError(
                f"sensitive_features.{attribute} has {len(groups)} values, y_true has {n}")
        groups = [str(g) for g in groups]
        if len(set(groups)) < 2:
            raise InvalidRequestError(f"sensitive_features.{attribute} needs at least two groups")
        frame = MetricFrame(
            metrics={"count": count, "selection_rate": selection_rate,
                     "true_positive_rate": true_positive_rate,
                     "false_positive_rate": false_positive_rate},
            y_true=y_true, y_pred=y_pred, sensitive_features=groups)
        by_group = frame.by_group.to_dict(orient="index")
        attributes.append({
            "attribute": attribute,
            "groups": sorted(by_group),
            "metrics": {
                "demographic_parity_difference": _number(
                    demographic_parity_difference(y_true, y_pred, sensitive_features=groups)),
                "disparate_impact_ratio": _number(
                    demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)),
                "equalized_odds_difference": _number(
                    equalized_odds_difference(y_true, y_pred, sensitive_features=groups)),
            },
            "group_metrics": {str(group): {k: _number(v) for k, v in values.items()}
                              for group, values in sorted(by_group.items())},
        })
    sample = {"y_true": list(y_true), "y_pred": list(y_pred), "sensitive_features": sensitive_features}
    return {
        "attributes": attributes,
        "sample_size": n,
        "sample_sha256": hashlib.sha256(canonical_bytes(sample)).hexdigest(),
        "computed_by": f"service:fairlearn=={fairlearn.__version__}",
    }


def _number(value):
    """Round to 12 significant digits so figures are stable across platforms; NaN becomes None."""
    value = float(value)
    if not math.isfinite(value):  # NaN/inf: a group without positives or negatives
        return None
    rounded = float(f"{value:.12g}")
    return int(rounded) if rounded.is_integer() else rounded
