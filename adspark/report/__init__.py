"""HTML reports from plain dicts: the run page, the model page and the evaluation page.

Never touches Spark: each page is rendered from JSON-like data (the run manifest, the
model's manifest, the evaluation metrics) into one self-contained HTML file with
matplotlib figures embedded as PNG data URIs, so it opens offline.
"""

from adspark.report.pages import evaluation_page, model_page, run_page

MAX_BYTES = 2 * 1024 * 1024

__all__ = ["MAX_BYTES", "evaluation_page", "model_page", "run_page"]
