"""The three pages, each from plain dicts: the run manifest, the model manifest, the metrics."""

from __future__ import annotations

from typing import Any

from adspark.report import plots
from adspark.report.html import esc, fmt, image, is_reason, kv_table, page, pct, section, table

# --------------------------------------------------------------------------- shared parts


def loss_curves(training: dict[str, Any]) -> dict[str, list[float]]:
    """Per-epoch losses from a training summary: `curves`, or each member's (networks by index, named
    members, such as an ensemble's kinds or the losses of `mse+welsch`, by name)."""
    found: dict[str, list[float]] = {}
    members = training.get("members")
    named: list[tuple[str, Any]] = []
    if isinstance(members, list):
        named = [(f"[{i}] " if len(members) > 1 else "", member) for i, member in enumerate(members)]
    elif isinstance(members, dict):
        named = [(f"{name} ", member) for name, member in members.items()]
    for prefix, member in named:
        if isinstance(member, dict):
            found.update({prefix + name: values for name, values in loss_curves(member).items()})
    for name, values in (training.get("curves") or {}).items():
        found[name] = list(values)
    return {k: v for k, v in found.items() if v}


def _curves_section(training: dict[str, Any]) -> str:
    curves = loss_curves(training)
    if not curves:
        return section("Training loss", '<p class="note">This model\'s manifest records no per-epoch losses.</p>')
    return section("Training loss", image(plots.curves(curves, "Loss per epoch", "epoch", "loss", log_y=True),
                                          "training loss curves"))


def top_rows_section(top: dict[str, Any] | None, heading: str, empty: str) -> str:
    if not top or not top.get("rows"):
        return section(heading, f'<p class="note">{esc(empty)}</p>')
    columns = list(top["columns"])
    rows = [[v if isinstance(v, int) and not isinstance(v, bool) else fmt(v, 6) for v in row] for row in top["rows"]]
    numeric = [all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in top["rows"])
               for i in range(len(columns))]
    # the reasons column by its content: output.reasons_column may have renamed it
    reasons = [c for i, c in enumerate(columns)
               if any(isinstance(r[i], list) and r[i] and is_reason(r[i][0]) for r in top["rows"])]
    note = (f'<p class="note"><code>{esc(reasons[0])}</code>: the columns contributing most to the row\'s score, '
            "each with its share of the score and, for a numeric column, the value the model expected there.</p>"
            if reasons else
            '<p class="note">The output has no <code>top_features</code> column, so no reasons are shown.</p>')
    return section(heading, table(columns, rows, numeric, lines=[c in reasons for c in columns]), note)


# --------------------------------------------------------------------------- run page


def _drift_section(drift: dict[str, Any]) -> str:
    features = drift.get("features") or {}
    max_psi = float(drift.get("max_psi", 0.25))
    if not features:
        return section("Drift", '<p class="note">No drift was computed for this run.</p>')
    names = sorted(features, key=lambda c: -features[c]["psi"])
    over = [features[c]["psi"] > max_psi for c in names]
    drifted = [c for c, o in zip(names, over, strict=True) if o]
    banner = (f'<div class="alarm">Drift: PSI above {max_psi:g} in {len(drifted)} column(s): '
              f"{esc(', '.join(drifted))}.</div>" if drifted else
              f'<div class="ok">No feature drifted: every PSI is at most {max_psi:g}.</div>')
    rows = [[c, fmt(features[c]["psi"], 3), fmt(features[c]["ks"], 3), pct(features[c]["null_rate_reference"]),
             pct(features[c]["null_rate"]), "drift" if o else "ok"] for c, o in zip(names, over, strict=True)]
    chart = plots.bars(names, [features[c]["psi"] for c in names], "PSI per feature (against training)",
                       "population stability index", limit=max_psi, highlight=over)
    counted = fmt(drift.get("sample_rows"))
    basis = (f"Over all {counted} input rows, counted in the scoring pass." if drift.get("counted_in_scoring")
             else f"On a seeded sample of {counted} input rows.")
    note = (f'<p class="note">{esc(basis)} PSI over the '
            "training deciles plus a null bucket (0.1: small shift, 0.25: large); KS: the largest gap between "
            "the two cumulative distributions (numeric columns).</p>")
    headers = ["column", "PSI", "KS", "null rate (training)", "null rate (tonight)", "status"]
    return section("Drift", banner, image(chart, "PSI per feature"), note,
                   table(headers, rows, [False, True, True, True, True, False], over))


def _flag_reasons_section(m: dict[str, Any]) -> str:
    reasons = m.get("flag_reasons")
    if not reasons or not reasons.get("features"):
        return ""
    flagged = sum(r["flagged"] for r in reasons["features"]) + int(reasons.get("other") or 0)
    drift = (m.get("drift") or {}).get("features") or {}
    drifted = set((m.get("drift") or {}).get("drifted") or [])
    trained = reasons.get("training_flagged")
    rows = [[r["feature"], r["flagged"], pct(r["flagged"] / flagged),
             *([pct(r.get("training_share"))] if trained else []),
             "drifted" if r["feature"] in drifted else ("ok" if r["feature"] in drift else "–")]
            for r in reasons["features"]]
    if reasons.get("other"):
        rows.append(["(other columns)", reasons["other"], pct(reasons["other"] / flagged), *([""] if trained else []),
                     ""])
    headers = ["first reason", "flagged rows", "share of flags", *(["in training"] if trained else []), "drift"]
    note = (f'<p class="note">Each flagged row counted once, under the first entry of <code>{esc(reasons["column"])}'
            "</code>: the column contributing most to its score"
            + (f"; <i>in training</i>: the same share among the {fmt(trained)} training rows above the threshold"
               if trained else "")
            + ". A column behind many more flags than in training, and drifted, points at a change upstream "
            "rather than at the rows themselves.</p>")
    return section("What drives tonight's flags",
                   table(headers, rows, [False, True, True, *([True] if trained else []), False],
                         [r[-1] == "drifted" for r in rows]), note)


def run_page(m: dict[str, Any]) -> str:
    """The run report (`_adspark_report.html`) from the run manifest (`_adspark_run.json`)."""
    drift = m.get("drift") or {}
    flag = drift.get("flag_rate") or {}
    expected = flag.get("expected")
    summary = kv_table([
        ("input", m.get("input_path", "")),
        ("output", m.get("output_path", "")),
        ("model", f"{m.get('model_kind', '')} in {m.get('model_dir', '')}"),
        ("model sha256", m.get("model_sha256", "")),
        ("rows in / out", f"{fmt(m.get('input_rows'))} / {fmt(m.get('output_rows'))}"),
        ("flagged", f"{fmt(m.get('flagged'))} ({pct(m.get('flagged_rate'))}; expected "
                    f"{pct(expected)} from training)"),
        ("threshold", fmt(m.get("threshold"), 6)),
        ("score PSI", fmt(drift.get("score_psi"), 3)),
        ("timings (s)", ", ".join(f"{k} {v}" for k, v in (m.get("timings") or {}).items())),
    ])
    parts = [section("Summary", summary)]
    hist = drift.get("score_histogram")
    if hist:
        series = {"training": hist["reference"], "tonight": hist["current"]}
        uri = plots.score_histogram(hist["edges"], series, m.get("threshold"), "Score distribution", log_y=True)
        rate = plots.bars(["expected (training)", "tonight"], [100 * (expected or 0.0), 100 * (flag["current"])],
                          "Flag rate", "% of rows flagged")
        parts.append(section("Scores against training", image(uri, "score histogram"), image(rate, "flag rate")))
    parts.append(_drift_section(drift))
    parts.append(_flag_reasons_section(m))
    parts.append(top_rows_section(m.get("top_rows"), "Top flagged rows", "No rows were scored."))
    return page(f"adspark run {m.get('run_id', '')}", f"{m.get('input_path', '')} scored with "
                f"{m.get('model_kind', '')} model {str(m.get('model_sha256', ''))[:12]}", parts)


# --------------------------------------------------------------------------- model page


def _error_scales(model: dict[str, Any], prep: dict[str, Any]) -> str:
    """One chart of each feature's typical training error: the model's, or each member network's."""
    members = model.get("members")
    if not isinstance(members, list):
        return _error_scale_chart(model, prep, "")
    per_loss = "+" in str(model.get("loss", ""))  # model.loss: mse+welsch names its networks by loss
    charts = []
    for member in members:
        spec = member.get("model") or {}
        name = f"{spec.get('loss')} network" if per_loss else member.get("kind")
        charts.append(_error_scale_chart(spec, prep, f" ({name})"))
    return "".join(charts)


def _error_scale_chart(model: dict[str, Any], prep: dict[str, Any], which: str) -> str:
    scales, names = model.get("error_scale"), prep.get("feature_names")
    if not scales or not names or len(scales) != len(names):
        return ""
    order = sorted(range(len(names)), key=lambda i: -scales[i])[:25]
    chart = plots.bars([names[i] for i in order], [scales[i] for i in order],
                       f"Typical training reconstruction error per feature{which}", "error scale (scores divide by it)")
    return section(f"Error scale per feature{which}", image(chart, f"error scale per feature{which}"))


def model_page(manifest: dict[str, Any], path: str = "") -> str:
    """The model report (`report.html` in the model directory) from its manifest."""
    thr = manifest.get("threshold") or {}
    training = manifest.get("training") or {}
    ref = (manifest.get("reference") or {}).get("score")
    scalars = [(k, fmt(v)) for k, v in training.items() if not isinstance(v, dict | list)]
    summary = kv_table([
        ("kind", manifest.get("kind", "")),
        ("created", manifest.get("created_at", "")),
        ("threshold", f"{fmt(thr.get('threshold'), 6)} ({thr.get('method', '')} {thr.get('value', '')})"),
        ("expected flag rate", pct(ref["expected_flag_rate"]) if ref else "–"),
        *scalars,
    ])
    parts = [section("Summary", summary), _curves_section(training)]
    if ref:
        uri = plots.score_histogram(ref["hist_edges"], {"training sample": ref["hist_shares"]},
                                    thr.get("threshold"), "Training score distribution", log_y=True)
        parts.append(section("Training scores", image(uri, "training score distribution")))
    parts.append(_error_scales(manifest.get("model") or {}, manifest.get("preprocessing") or {}))
    cols = [[c["name"], c["type"], c["role"]] for c in manifest.get("input_schema", [])]
    parts.append(section("Input columns", table(["column", "type", "role"], cols)))
    return page(f"adspark model: {manifest.get('kind', '')}", path or "model artifact", parts)


# --------------------------------------------------------------------------- evaluation page


def evaluation_page(metrics: dict[str, Any], manifest: dict[str, Any] | None = None) -> str:
    """The evaluation report (`index.html`) from `metrics.json`, plus the model's training summary."""
    at = metrics.get("at_threshold") or {}
    summary = kv_table([
        ("table", metrics.get("input", "")),
        ("label", metrics.get("label", "")),
        ("rows / positives", f"{fmt(metrics.get('rows'))} / {fmt(metrics.get('positives'))}"),
        ("ROC-AUC", fmt(metrics.get("roc_auc"), 5)),
        ("PR-AUC (average precision)", fmt(metrics.get("pr_auc"), 5)),
        ("threshold", fmt(metrics.get("threshold"), 6)),
        ("flagged", f"{fmt(metrics.get('flagged'))} ({pct(at.get('flagged_rate'))})"),
        ("precision / recall at threshold", f"{fmt(at.get('precision'), 4)} / {fmt(at.get('recall'), 4)}"),
    ])
    parts = [section("Summary", summary)]
    hist = metrics.get("histogram")
    if hist:
        series = {f"label {k}": v for k, v in hist["by_label"].items()}
        uri = plots.score_histogram(hist["edges"], series, metrics.get("threshold"),
                                    "Score distribution by label", log_y=True)
        parts.append(section("Scores by label", image(uri, "score distribution by label")))
    curves = metrics.get("curves") or {}
    if curves:
        roc = plots.xy({"ROC": (curves["roc"]["fpr"], curves["roc"]["tpr"])}, f"ROC (AUC {fmt(metrics['roc_auc'], 4)})",
                       "false positive rate", "true positive rate", diagonal=True)
        pr = plots.xy({"PR": (curves["pr"]["recall"], curves["pr"]["precision"])},
                      f"Precision-recall (AP {fmt(metrics['pr_auc'], 4)})", "recall", "precision")
        parts.append(section("ROC and precision-recall", image(roc, "ROC curve"), image(pr, "PR curve")))
    pk = metrics.get("precision_at_k") or {}
    parts.append(section("Precision at k", table(["k", "precision"], [[fmt(int(k)), fmt(v, 4)] for k, v in pk.items()],
                                                 [True, True])))
    segments = metrics.get("segments") or {}
    for col, by in segments.items():
        rows = [[v, fmt(s.get("rows")), fmt(s.get("positives")), fmt(s.get("roc_auc"), 4), fmt(s.get("pr_auc"), 4),
                 fmt(s.get("flagged")), fmt(s["at_threshold"].get("precision"), 4),
                 fmt(s["at_threshold"].get("recall"), 4)] for v, s in by.items()]
        headers = [col, "rows", "positives", "ROC-AUC", "PR-AUC", "flagged", "precision", "recall"]
        parts.append(section(f"By {col}", table(headers, rows, [False] + [True] * 7)))
    if manifest is not None:
        parts.append(_curves_section(manifest.get("training") or {}))
    parts.append(top_rows_section(metrics.get("top_rows"), "20 highest-scored rows", "No rows."))
    return page("adspark evaluation", f"{metrics.get('input', '')} against label {metrics.get('label', '')!s}", parts)
