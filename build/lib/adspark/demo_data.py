"""Synthetic card-transactions table for the ``adspark demo`` command.

`generate_transactions` builds a realistic, deterministic (per seed) table of card
payments over 30 days; `write_transactions` writes it as a Parquet directory.

Normal traffic
--------------
* About ``n_rows / 40`` cards grouped into accounts (1-3 cards each). An account has a
  home country and a spending level; each card adds its own level, activity rate,
  online propensity and mix of merchant categories, so the typical amount and the
  transaction volume differ from card to card.
* ``merchant_category``: 12 categories with realistic frequencies (grocery and
  restaurants common, jewelry and travel rare). ``amount`` is lognormal per category,
  scaled by the card's level and rounded to cents, so it is heavy-tailed.
* ``hour`` follows a diurnal curve (flatter for online payments; shifted 5-8 hours
  earlier for the ~5% of cards held by night-shift workers) and ``ts`` falls in that
  hour; weekends are a little busier.
* About 15% of cards take one trip abroad of a few days, so roughly 3% of the rows
  are in a foreign ``country`` with a large ``distance_from_home_km``; a quarter of
  the cards also take a domestic trip (a few hundred km). At home the distance is
  lognormal with a median of a few km.
* ``txns_last_24h`` counts the card's own earlier transactions in the previous 24 h.

Fraud (``is_fraud == 1``, about ``fraud_rate`` of the rows; a label for evaluation only)
-----------------------------------------------------------------------------------------
Fraud rows replace normal rows of random cards with one of three patterns, each
visible in the row's own columns but overlapping the tails of normal traffic:

1. Account takeover (~40%): an amount several times the card's usual level for a
   high-value category (electronics, travel, jewelry, ...), far from home (abroad for
   about half of them, otherwise a distant domestic city), at night (mostly 00-05,
   else late evening), sometimes with a few extra transactions in the last 24 h.
2. Card testing (~35%): tiny online ``digital_goods`` amounts (0.50-2.00) from a card
   with a burst of transactions in the previous 24 h (typically 10-30, up to 60).
3. Unusual merchant pattern (~25%): in-person jewelry / electronics purchases with
   extreme amounts (600-8,000) at odd hours (mostly 01-04); about 30% of them in a
   rare country code that never occurs in normal rows.

No single column separates fraud from normal: big amounts, night hours, travel
abroad, tiny digital purchases and busy days all occur in normal rows too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMNS", "SCHEMA", "generate_transactions", "write_transactions"]

SCHEMA = pa.schema(
    [
        ("txn_id", pa.int64()),
        ("card_id", pa.string()),
        ("account_id", pa.string()),
        ("ts", pa.timestamp("us")),
        ("amount", pa.float64()),
        ("merchant_category", pa.string()),
        ("hour", pa.int32()),
        ("country", pa.string()),
        ("distance_from_home_km", pa.float64()),
        ("txns_last_24h", pa.int32()),
        ("is_online", pa.bool_()),
        ("is_fraud", pa.int8()),
    ]
)
COLUMNS: list[str] = SCHEMA.names

START = np.datetime64("2024-03-01T00:00:00", "us")
N_DAYS = 30
SECONDS_PER_DAY = 86_400

# name, frequency, median amount, lognormal sigma, P(online)
_CATEGORIES: list[tuple[str, float, float, float, float]] = [
    ("grocery", 0.22, 42.0, 0.60, 0.06),
    ("restaurants", 0.15, 28.0, 0.60, 0.05),
    ("fuel", 0.10, 48.0, 0.35, 0.00),
    ("online_retail", 0.12, 38.0, 0.90, 0.95),
    ("transport", 0.07, 14.0, 0.70, 0.35),
    ("digital_goods", 0.08, 9.0, 0.80, 0.98),
    ("pharmacy", 0.05, 22.0, 0.70, 0.10),
    ("entertainment", 0.05, 32.0, 0.80, 0.40),
    ("clothing", 0.06, 55.0, 0.80, 0.35),
    ("electronics", 0.045, 160.0, 0.95, 0.45),
    ("travel", 0.03, 320.0, 0.90, 0.65),
    ("jewelry", 0.015, 210.0, 1.00, 0.15),
]
CATEGORY_NAMES = [c[0] for c in _CATEGORIES]
_CAT_FREQ = np.array([c[1] for c in _CATEGORIES])
_CAT_FREQ = _CAT_FREQ / _CAT_FREQ.sum()
_CAT_MEDIAN = np.array([c[2] for c in _CATEGORIES])
_CAT_SIGMA = np.array([c[3] for c in _CATEGORIES])
_CAT_ONLINE = np.array([c[4] for c in _CATEGORIES])
_CAT = {name: i for i, name in enumerate(CATEGORY_NAMES)}

# Home countries of the card holders and their shares; also the travel destinations.
HOME_COUNTRIES = ["US", "GB", "DE", "FR", "CA", "ES", "IT", "NL", "AU", "JP", "MX", "BR"]
_HOME_FREQ = np.array([0.40, 0.12, 0.10, 0.08, 0.07, 0.05, 0.04, 0.04, 0.03, 0.03, 0.02, 0.02])
_HOME_FREQ = _HOME_FREQ / _HOME_FREQ.sum()
# Only fraud uses these (pattern 3): a country code never seen in normal traffic.
RARE_COUNTRIES = ["KI", "NR", "TV", "PW"]
_COUNTRIES = HOME_COUNTRIES + RARE_COUNTRIES

# Relative activity per hour of day for in-person payments; online ones are flatter.
_DIURNAL = np.array(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.3, 0.9, 2.0, 3.5, 4.5, 5.0, 5.8,
     6.8, 6.3, 5.5, 5.3, 5.6, 6.3, 6.8, 6.0, 4.8, 3.6, 2.4, 1.3]
)  # fmt: skip
_HOUR_P_OFFLINE = _DIURNAL / _DIURNAL.sum()
_HOUR_P_ONLINE = 0.65 * _HOUR_P_OFFLINE + 0.35 / 24

TRIP_PROBABILITY = 0.15  # share of cards with one trip abroad (3-9 days): ~3% of rows abroad
DOMESTIC_TRIP_PROBABILITY = 0.25  # share of cards with one trip at home (2-6 days, a few hundred km away)
NIGHT_SHIFT_PROBABILITY = 0.05  # share of cards whose day runs 5-8 hours earlier than usual
FRAUD_MIX = (0.40, 0.35, 0.25)  # account takeover, card testing, unusual merchant


def _pick(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn from the distribution p (inverse CDF: fast and deterministic)."""
    cdf = np.cumsum(p)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(size), side="right"), len(p) - 1)


def _foreign(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    """A destination country index different from `home`, weighted by the country shares."""
    dest = _pick(rng, _HOME_FREQ, home.size)
    same = dest == home
    dest[same] = (home[same] + 1 + rng.integers(0, len(HOME_COUNTRIES) - 1, int(same.sum()))) % len(HOME_COUNTRIES)
    return dest


def _labels(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i:07d}" for i in range(n)], dtype=object)


def _strings(codes: np.ndarray, labels: list[str] | np.ndarray) -> pd.Series:
    """String column (pandas' default string dtype) from integer codes into `labels`."""
    return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(list(labels)))).astype("str")


def _count_last_24h(card: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """For each row, the number of earlier transactions of the same card within the previous 24 h."""
    span = int(seconds.max(initial=0)) + 2 * SECONDS_PER_DAY
    key = card.astype(np.int64) * span + seconds
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.searchsorted(sorted_key, sorted_key - SECONDS_PER_DAY, side="right")
    counts = np.empty(card.size, dtype=np.int64)
    counts[order] = np.arange(card.size) - first
    return counts


def generate_transactions(n_rows: int = 200_000, seed: int = 7, fraud_rate: float = 0.01) -> pd.DataFrame:
    """Synthetic card transactions, sorted by `ts`, with an `is_fraud` label (see the module docstring)."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if not 0.0 <= fraud_rate <= 0.5:
        raise ValueError(f"fraud_rate must be in [0, 0.5], got {fraud_rate}")
    rng = np.random.default_rng(seed)
    n = int(n_rows)

    # --- cards and accounts -------------------------------------------------------
    n_cards = max(1, n // 40)
    n_accounts = max(1, round(n_cards / 1.3))
    card_account = np.sort(rng.integers(0, n_accounts, n_cards))
    account_home = _pick(rng, _HOME_FREQ, n_accounts)
    account_level = rng.lognormal(0.0, 0.45, n_accounts)
    card_home = account_home[card_account]
    card_level = account_level[card_account] * rng.lognormal(0.0, 0.25, n_cards)
    card_activity = rng.gamma(1.5, 1.0, n_cards)
    card_online = rng.beta(2.0, 2.0, n_cards) * 2.0  # multiplies the category's online probability
    card_cat_cdf = np.cumsum(rng.dirichlet(_CAT_FREQ * 25.0, n_cards), axis=1)
    card_cat_cdf /= card_cat_cdf[:, -1:]
    has_trip = rng.random(n_cards) < TRIP_PROBABILITY
    trip_start = rng.integers(0, N_DAYS, n_cards)
    trip_end = np.where(has_trip, trip_start + rng.integers(3, 10, n_cards), -1)
    trip_country = _foreign(rng, card_home)
    has_dtrip = rng.random(n_cards) < DOMESTIC_TRIP_PROBABILITY
    dtrip_start = rng.integers(0, N_DAYS, n_cards)
    dtrip_end = np.where(has_dtrip, dtrip_start + rng.integers(2, 7, n_cards), -1)
    card_shift = np.where(rng.random(n_cards) < NIGHT_SHIFT_PROBABILITY, rng.integers(5, 9, n_cards), 0)

    # --- normal transactions ------------------------------------------------------
    card = _pick(rng, card_activity, n)
    day_weight = np.where((np.arange(N_DAYS) + 4) % 7 >= 5, 1.15, 1.0)  # 2024-03-01 is a Friday
    day = _pick(rng, day_weight, n)
    u = rng.random(n)
    cat = np.minimum((u[:, None] > card_cat_cdf[card]).sum(axis=1), len(CATEGORY_NAMES) - 1)
    is_online = rng.random(n) < np.clip(_CAT_ONLINE[cat] * card_online[card], 0.0, 1.0)
    hour = np.where(is_online, _pick(rng, _HOUR_P_ONLINE, n), _pick(rng, _HOUR_P_OFFLINE, n))
    hour = (hour - card_shift[card]) % 24  # night-shift workers live a few hours earlier
    amount = _CAT_MEDIAN[cat] * card_level[card] * np.exp(_CAT_SIGMA[cat] * rng.standard_normal(n))

    abroad = (day >= trip_start[card]) & (day < trip_end[card]) & (rng.random(n) < 0.9)
    away = (day >= dtrip_start[card]) & (day < dtrip_end[card]) & ~is_online
    country = np.where(abroad, trip_country[card], card_home[card])
    distance = np.where(is_online, rng.lognormal(np.log(6.0), 1.3, n), rng.lognormal(np.log(5.0), 1.1, n))
    distance = np.where(away, rng.lognormal(np.log(350.0), 0.8, n), distance)
    distance = np.where(abroad, rng.lognormal(np.log(1800.0), 0.7, n), distance)
    txn_bump = np.zeros(n, dtype=np.int64)

    # --- fraud ----------------------------------------------------------------------
    n_fraud = round(n * fraud_rate)
    is_fraud = np.zeros(n, dtype=np.int8)
    if n_fraud:
        rows = rng.choice(n, size=n_fraud, replace=False)
        is_fraud[rows] = 1
        kind = _pick(rng, np.array(FRAUD_MIX), n_fraud)

        # 1. account takeover
        r = rows[kind == 0]
        k = r.size
        cat[r] = np.array([_CAT[c] for c in ("electronics", "online_retail", "travel", "jewelry", "clothing")])[
            _pick(rng, np.array([0.3, 0.2, 0.2, 0.15, 0.15]), k)
        ]
        amount[r] = _CAT_MEDIAN[cat[r]] * card_level[card[r]] * rng.lognormal(0.8, 0.8, k)
        foreign = rng.random(k) < 0.55
        home = card_home[card[r]]
        country[r] = np.where(foreign, _foreign(rng, home), home)
        distance[r] = np.where(foreign, rng.lognormal(np.log(2500.0), 0.7, k), rng.lognormal(np.log(250.0), 1.0, k))
        hour[r] = np.where(rng.random(k) < 0.65, rng.integers(0, 6, k), rng.integers(19, 24, k))
        is_online[r] = rng.random(k) < 0.5
        txn_bump[r] = rng.integers(0, 5, k)

        # 2. card testing
        r = rows[kind == 1]
        k = r.size
        cat[r] = _CAT["digital_goods"]
        amount[r] = rng.uniform(0.5, 2.0, k)
        is_online[r] = True
        hour[r] = _pick(rng, _HOUR_P_ONLINE * 0.5 + 0.5 / 24, k)
        foreign = rng.random(k) < 0.2
        home = card_home[card[r]]
        country[r] = np.where(foreign, _foreign(rng, home), home)
        distance[r] = np.where(foreign, rng.lognormal(np.log(2500.0), 0.7, k), rng.lognormal(np.log(15.0), 1.4, k))
        txn_bump[r] = np.clip(np.round(rng.lognormal(np.log(14.0), 0.7, k)), 4, 60)

        # 3. unusual merchant pattern
        r = rows[kind == 2]
        k = r.size
        cat[r] = np.where(rng.random(k) < 0.6, _CAT["jewelry"], _CAT["electronics"])
        amount[r] = np.exp(rng.uniform(np.log(600.0), np.log(8000.0), k))
        hour[r] = np.where(rng.random(k) < 0.8, rng.integers(1, 5, k), rng.integers(21, 24, k))
        is_online[r] = False
        rare = rng.random(k) < 0.3
        country[r] = np.where(rare, len(HOME_COUNTRIES) + rng.integers(0, len(RARE_COUNTRIES), k), card_home[card[r]])
        distance[r] = np.where(rare, rng.lognormal(np.log(9000.0), 0.3, k), rng.lognormal(np.log(60.0), 1.2, k))

    # --- time, ordering, rolling counts -------------------------------------------------
    seconds = day.astype(np.int64) * SECONDS_PER_DAY + hour.astype(np.int64) * 3600 + rng.integers(0, 3600, n)
    order = np.argsort(seconds, kind="stable")
    card, seconds, hour, cat = card[order], seconds[order], hour[order], cat[order]
    amount, country, distance = amount[order], country[order], distance[order]
    is_online, is_fraud, txn_bump = is_online[order], is_fraud[order], txn_bump[order]
    recent = _count_last_24h(card, seconds)
    txns_last_24h = np.where(txn_bump >= 4, np.maximum(recent, txn_bump), recent + txn_bump)

    card_labels = _labels("C", n_cards)
    return pd.DataFrame(
        {
            "txn_id": np.arange(n, dtype=np.int64),
            "card_id": _strings(card, card_labels),
            "account_id": _strings(card_account[card], _labels("A", n_accounts)),
            "ts": START + seconds * np.timedelta64(1_000_000, "us"),
            "amount": np.maximum(np.round(amount, 2), 0.01),
            "merchant_category": _strings(cat, CATEGORY_NAMES),
            "hour": hour.astype(np.int32),
            "country": _strings(country, _COUNTRIES),
            "distance_from_home_km": np.round(distance, 3),
            "txns_last_24h": txns_last_24h.astype(np.int32),
            "is_online": is_online.astype(bool),
            "is_fraud": is_fraud,
        }
    )


def write_transactions(path: str | Path, n_rows: int = 200_000, seed: int = 7, n_files: int = 4) -> int:
    """Write `generate_transactions(n_rows, seed)` as a Parquet directory of `n_files` part files.

    Part files from an earlier run in the same directory are replaced. Returns the row count.
    """
    if n_files < 1:
        raise ValueError(f"n_files must be >= 1, got {n_files}")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    table = pa.Table.from_pandas(generate_transactions(n_rows, seed), schema=SCHEMA, preserve_index=False)
    bounds = np.linspace(0, table.num_rows, n_files + 1).astype(np.int64)
    for i in range(n_files):
        part = table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i]))
        pq.write_table(part, out / f"part-{i:05d}.parquet")
    return table.num_rows
