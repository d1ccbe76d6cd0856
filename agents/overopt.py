"""Over-optimisation curves (Gao, Schulman & Hilton 2023): judges' scores against d = √KL(π ‖ prior).

The monitor records one point per rollout: ``d`` (nats^½, from the per-episode KL summed over steps) and the
mean proxy, held-out and gold scores of that rollout's episodes. ``fit_gao`` fits their RL form to the gain in
gold over the first point (the initial policy), ``Δgold(d) = d (a − b ln d)``, whose peak is at
``d* = exp(a / b − 1)`` with ``Δgold(d*) = b d*`` when ``b > 0``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

CURVE_KEYS = ("proxy", "heldout", "gold")


def fit_gao(d: Sequence[float], gain: Sequence[float]) -> dict:
    """Least-squares ``a, b`` of ``gain = d (a − b ln d)`` over points with ``d > 0`` (``d`` in nats^½, ``gain`` in the
    score's units), the fitted peak ``d_peak`` / ``gain_peak`` (None when ``b <= 0``: no turnover within the fit),
    ``peak_within_data`` (an extrapolated peak is a weaker claim) and ``r2``. Needs three points with ``d > 0``."""
    d, gain = np.asarray(d, float), np.asarray(gain, float)
    keep = (d > 0) & np.isfinite(gain)
    if keep.sum() < 3:
        return {"a": None, "b": None, "d_peak": None, "gain_peak": None, "r2": None, "points": int(keep.sum())}
    d, gain = d[keep], gain[keep]
    design = np.stack([d, -d * np.log(d)], 1)
    (a, b), *_ = np.linalg.lstsq(design, gain, rcond=None)
    pred = design @ np.array([a, b])
    total = float(((gain - gain.mean()) ** 2).sum())
    r2 = 1.0 - float(((gain - pred) ** 2).sum()) / total if total > 0 else None
    peak = float(np.exp(a / b - 1.0)) if b > 0 and a / b - 1.0 < 20 else None  # b ~ 0: no turnover in reach
    return {"a": float(a), "b": float(b), "d_peak": peak, "gain_peak": float(b * peak) if peak else None,
            "peak_within_data": bool(peak is not None and peak <= d.max()), "r2": r2, "points": int(len(d))}


def curve_fit(curve: Sequence[dict]) -> dict:
    """``fit_gao`` on a monitor curve (dicts with ``sqrt_kl`` and ``gold``), gold gain over the first point."""
    if not curve:
        return fit_gao([], [])
    d = [p["sqrt_kl"] for p in curve]
    gain = [p["gold"] - curve[0]["gold"] for p in curve]
    return {**fit_gao(d, gain), "gold_start": curve[0]["gold"]}


def plot_curve(curve: Sequence[dict], fit: dict | None = None) -> bytes:
    """A PNG (bytes) of proxy, held-out and gold against √KL, with the fitted gold curve when there is one."""
    import matplotlib  # noqa: PLC0415 - only for pictures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    d = np.array([p["sqrt_kl"] for p in curve])
    for key in CURVE_KEYS:
        ax.plot(d, [p[key] for p in curve], "o-", ms=3, lw=1, label=key)
    if fit and fit.get("a") is not None and len(d):
        xs = np.linspace(max(d.min(), 1e-3), d.max(), 100)
        ax.plot(xs, fit["gold_start"] + xs * (fit["a"] - fit["b"] * np.log(xs)), "k--", lw=1, label="gold fit")
    ax.set_xlabel("√KL(π ‖ prior)  (nats^½ per episode)")
    ax.set_ylabel("score")
    ax.set_title("over-optimisation: gold = simulated listeners")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png_to_array(png: bytes) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of a PNG, for TensorBoard's image logger."""
    import matplotlib.image as mpimg  # noqa: PLC0415

    img = mpimg.imread(io.BytesIO(png), format="png")
    return (img[..., :3] * 255).round().astype(np.uint8)
