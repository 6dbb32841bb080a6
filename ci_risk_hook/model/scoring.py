"""Load and score ci-risk model artifacts with the standard library only.

The pre-push hook imports this on every push, so it must not pull in numpy,
pandas or scikit-learn, and it must never execute anything read from a model
file: artifacts are plain JSON (no pickle), sealed with a sha256 checksum.
The artifact layout is produced by ``ci_risk_hook.export``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import sys
from bisect import bisect_left
from typing import NamedTuple

from ci_risk_hook.errors import EXIT_BLOCKED, CiRiskError

# Avoid importing ``typing`` at runtime (a few ms of hook start-up); mypy
# treats this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Mapping, Sequence, Tuple, Union

    Number = Union[float, int]
    # feature, threshold, left, right, missing_left, value, leaf_value
    Tree = Tuple[List[int], List[Number], List[int], List[int], List[int], List[Number], List[Number]]

FORMAT = "ci-risk-model"
FORMAT_VERSION = 1
MODEL_KINDS = ("forest", "gbdt", "logistic")
CALIBRATION_INPUTS = ("probability", "log-odds")

# +-inf inputs and thresholds are clamped to the largest finite float so the
# artifact stays strict JSON; ordering against any finite threshold is kept.
_MAX = sys.float_info.max
_NUMBER_TYPES = frozenset((float, int))
_INT_TYPES = frozenset((int,))
_SHA_MEMBER = b',"sha256":"'
# No model needs more (the bundled forest is under 1 MB); a bigger file, a
# device or a pipe that never ends is refused before it costs time or memory.
MAX_MODEL_BYTES = 50 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


class ModelError(CiRiskError):
    """The model artifact cannot be used (missing, corrupt, tampered, wrong format)."""

    exit_code = EXIT_BLOCKED


class ScoreError(ModelError):
    """The model returned a score that is not a probability (NaN, infinite, out of [0, 1])."""


class Explanation(NamedTuple):
    """Per-feature attribution of one prediction.

    ``base_value + sum(contributions.values()) == model_output`` (up to float
    rounding), where both live in ``space``: "probability" for forests,
    "log-odds" for gradient boosting and logistic regression. Calibration is
    deliberately outside the decomposition because it is not additive.
    """

    probability: float
    raw_probability: float
    base_value: float
    contributions: dict[str, float]
    space: str
    model_output: float


def canonical_json(obj: object) -> str:
    """The byte-stable serialisation that the checksum is computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def artifact_sha256(artifact: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``artifact`` without its "sha256" key."""
    body = {k: v for k, v in artifact.items() if k != "sha256"}
    try:
        text = canonical_json(body)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"artifact is not plain finite JSON: {exc}") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def platt(a: float, b: float, s: float) -> float:
    """Platt scaling, in sklearn's _SigmoidCalibration convention (training's numpy twin is held to it by a test)."""
    return _sigmoid(-(a * s + b))


def isotonic(xs: list[float], ys: list[float], s: float) -> float:
    """Isotonic calibration: piecewise-linear through (xs, ys), clipped at both ends, as np.interp."""
    if len(xs) == 1:
        return ys[0]
    s = min(max(s, xs[0]), xs[-1])
    # Mirrors scipy interp1d (used by IsotonicRegression): left search,
    # index clipped to [1, n-1], slope form.
    j = min(max(bisect_left(xs, s), 1), len(xs) - 1)
    x0, y0 = xs[j - 1], ys[j - 1]
    return (ys[j] - y0) / (xs[j] - x0) * (s - x0) + y0


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def load_model(path: str | os.PathLike[str], known_features: Sequence[str] | None = None) -> PortableModel:
    """Read, verify and parse an artifact written by ``export.write_artifact``.

    With ``known_features``, a model that reads any other feature is refused:
    it would score every push with that feature missing.
    """
    shown = os.fspath(path)
    raw = read_artifact(path)
    model = PortableModel._build(_parse_json(raw, shown), shown, raw)
    if known_features is not None:
        _require_known_features(model, known_features)
    return model


def read_artifact(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a model file, refused beyond MAX_MODEL_BYTES without reading more than that."""
    shown = os.fspath(path)
    too_big = f"model file {shown} is larger than {MAX_MODEL_BYTES // (1024 * 1024)} MB; not read"
    chunks: list[bytes] = []
    total = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_MODEL_BYTES:
                raise ModelError(too_big)
            while total <= MAX_MODEL_BYTES:  # devices and pipes have no size to check first
                chunk = fh.read(min(_READ_CHUNK, MAX_MODEL_BYTES + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {shown}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {shown}: {exc.strerror or exc}") from None
    if total > MAX_MODEL_BYTES:
        raise ModelError(too_big)
    return b"".join(chunks)


def read_artifact_json(path: str | os.PathLike[str]) -> Any:
    """The parsed JSON of a model file (size-capped, strict JSON), for code that edits artifacts."""
    return _parse_json(read_artifact(path), os.fspath(path))


def _parse_json(raw: bytes, shown: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"model file {shown} is not valid JSON: {msg}") from None


def _raw_checksum_matches(raw: bytes, data: object) -> bool:
    """Hash the file bytes directly when they are the canonical form.

    Re-serialising a large forest costs more than parsing it, and files
    written by ``write_artifact`` are canonical JSON plus the sha256 member,
    so removing that member gives exactly the hashed bytes. Anything else
    (e.g. a pretty-printed copy) falls back to re-serialising.
    """
    if type(data) is not dict:
        return False
    sha = data.get("sha256")
    if type(sha) is not str or len(sha) != 64:
        return False
    member = _SHA_MEMBER + sha.encode("ascii", "replace") + b'"'
    body = raw.strip()
    start = body.find(member)
    while start != -1:
        candidate = body[:start] + body[start + len(member) :]
        if hashlib.sha256(candidate).hexdigest() == sha:
            return True
        start = body.find(member, start + 1)
    return False


def _fail(where: str, problem: str) -> ModelError:
    return ModelError(f"invalid model artifact: {where}: {problem}")


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return d[key]
    except KeyError:
        raise _fail(where, f'missing field "{key}"') from None


def _dict(value: object, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail(where, "expected a JSON object")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _fail(where, f"expected a finite number, got {value!r}")


def _numbers(value: object, where: str, length: int | None = None) -> list[Number]:
    if type(value) is not list:
        raise _fail(where, "expected a list of numbers")
    if length is not None and len(value) != length:
        raise _fail(where, f"expected {length} values, got {len(value)}")
    # C-level passes: per-element Python loops would dominate load time.
    if not set(map(type, value)) <= _NUMBER_TYPES or not all(map(math.isfinite, value)):
        raise _fail(where, "expected only finite numbers")
    return value


def _ints(value: object, where: str, length: int, lo: int, hi: int) -> list[int]:
    if type(value) is not list:
        raise _fail(where, "expected a list of integers")
    if len(value) != length:
        raise _fail(where, f"expected {length} values, got {len(value)}")
    if not set(map(type, value)) <= _INT_TYPES:
        raise _fail(where, "expected only integers")
    if value and (min(value) < lo or max(value) >= hi):
        raise _fail(where, f"values must lie in [{lo}, {hi})")
    return value


def _parse_tree(obj: object, where: str, n_features: int, native: bool) -> Tree:
    """Internal nodes and leaves live in separate arrays (see export.py).

    A child reference c >= 0 is an internal node, c < 0 is leaf ~c. Whether
    children really follow their parent (no cycles) is checked while
    scoring, where it costs one comparison per visited node instead of a
    pass over every node at start-up.
    """
    tree = _dict(obj, where)
    feature_raw = _get(tree, "feature", where)
    if type(feature_raw) is not list:
        raise _fail(where + ".feature", "expected a list of integers")
    m = len(feature_raw)
    feature = _ints(feature_raw, where + ".feature", m, 0, n_features)
    threshold = _numbers(_get(tree, "threshold", where), where + ".threshold", m)
    left = _ints(_get(tree, "left", where), where + ".left", m, -m - 1, m)
    right = _ints(_get(tree, "right", where), where + ".right", m, -m - 1, m)
    value = _numbers(_get(tree, "value", where), where + ".value", m)
    leaf_value = _numbers(_get(tree, "leaf_value", where), where + ".leaf_value", m + 1)
    if native:
        missing_left = _ints(_get(tree, "missing_left", where), where + ".missing_left", m, 0, 2)
    elif "missing_left" in tree:
        raise _fail(where, '"missing_left" given but the model imputes missing values')
    else:
        missing_left = []
    return (feature, threshold, left, right, missing_left, value, leaf_value)


def _cycle(where: int) -> ModelError:
    return ModelError(f"invalid model artifact: tree node {where} does not point forward")


class PortableModel:
    """A verified model ready to score rows; build it with load_model/from_dict.

    Everything is parsed and validated once at load so that scoring a row is
    plain list indexing.
    """

    __slots__ = (
        "feature_names",
        "thresholds",
        "provenance",
        "sha256",
        "kind",
        "missing",
        "imputation",
        "calibration",
        "source",
        "_n",
        "_fill",
        "_trees",
        "_base",
        "_coef",
        "_intercept",
        "_center",
        "_scale",
        "_mean_z",
        "_lr_base",
        "_cal_kind",
        "_cal_on_prob",
        "_cal_a",
        "_cal_b",
        "_cal_x",
        "_cal_y",
        "_rule",
        "_ranges",
    )

    feature_names: tuple[str, ...]
    thresholds: dict[str, float]
    provenance: dict[str, Any]
    sha256: str
    kind: str
    missing: str
    imputation: dict[str, float]
    calibration: dict[str, Any] | None
    source: str
    _n: int
    _fill: list[float | None]
    _trees: list[Tree]
    _base: float
    _coef: list[float]
    _intercept: float
    _center: list[float]
    _scale: list[float]
    _mean_z: list[float]
    _lr_base: float
    _cal_kind: str | None
    _cal_on_prob: bool
    _cal_a: float
    _cal_b: float
    _cal_x: list[float]
    _cal_y: list[float]
    _rule: tuple[int, float, float] | None
    _ranges: list[tuple[float, float]] | None

    def __init__(self) -> None:
        raise TypeError("use load_model() or PortableModel.from_dict()")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PortableModel:
        """Validate an in-memory artifact (checksum included) and build a model."""
        return cls._build(d if type(d) is dict else dict(d), "<dict>")

    @classmethod
    def _build(cls, data: object, source: str, raw: bytes | None = None) -> PortableModel:
        """`raw`: the file's bytes, to check the checksum on them directly when they are canonical."""
        self = object.__new__(cls)
        try:
            artifact = _dict(data, "artifact")
            self._parse(artifact, raw is not None and _raw_checksum_matches(raw, artifact))
            _validate_ranges(self, artifact)
        except ModelError as exc:
            if source == "<dict>":
                raise
            raise ModelError(f"{source}: {exc}") from None
        self.source = source
        return self

    def _parse(self, d: dict[str, Any], checksum_verified: bool) -> None:
        fmt = d.get("format")
        if fmt != FORMAT:
            raise ModelError(f'not a ci-risk model artifact (format is {fmt!r}, expected "{FORMAT}")')
        version = d.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise ModelError(f"unsupported model format_version {version!r} (this ci-risk reads {FORMAT_VERSION})")
        sha = d.get("sha256")
        if type(sha) is not str or len(sha) != 64 or sha.strip("0123456789abcdef"):
            raise ModelError('model checksum missing or malformed (field "sha256")')
        if not checksum_verified:
            actual = artifact_sha256(d)
            if actual != sha:
                raise ModelError(
                    f"model checksum mismatch (stored sha256 {sha[:12]}..., computed "
                    f"{actual[:12]}...): the artifact is corrupt or was edited after export"
                )
        self.sha256 = sha

        names = _get(d, "feature_names", "artifact")
        if type(names) is not list or not names or not set(map(type, names)) <= {str} or len(set(names)) != len(names):
            raise _fail("feature_names", "expected a non-empty list of unique strings")
        self.feature_names = tuple(names)
        n = self._n = len(names)

        thresholds = _dict(_get(d, "thresholds", "artifact"), "thresholds")
        for key, val in thresholds.items():
            if not 0.0 <= _number(val, f"thresholds.{key}") <= 1.0:
                raise _fail(f"thresholds.{key}", "must be a probability in [0, 1]")
        self.thresholds = {k: float(v) for k, v in thresholds.items()}
        self.provenance = _dict(_get(d, "provenance", "artifact"), "provenance")

        self._rule = self._parse_rule(d.get("rule"), names)

        model = _dict(_get(d, "model", "artifact"), "model")
        kind = self.kind = _get(model, "kind", "model")
        if kind not in MODEL_KINDS:
            raise _fail("model.kind", f"unknown model kind {kind!r}")
        missing = self.missing = _get(model, "missing", "model")
        if missing not in ("native", "impute") or (missing == "native" and kind == "logistic"):
            raise _fail("model.missing", f"unsupported value {missing!r} for a {kind} model")

        imputation = _dict(_get(d, "imputation", "artifact"), "imputation")
        if missing == "native":
            if imputation:
                raise _fail("imputation", "must be empty: this model routes missing values itself")
            self._fill = [None] * n
        else:
            extra = set(imputation) - set(names)
            if extra:
                raise _fail("imputation", f"unknown features {sorted(extra)}")
            absent = [name for name in names if name not in imputation]
            if absent:
                raise _fail("imputation", f"no fill value for {absent}")
            self._fill = [_number(imputation[name], f"imputation.{name}") for name in names]
        self.imputation = {name: float(imputation[name]) for name in imputation}

        self._trees = []
        self._base = 0.0
        if kind == "logistic":
            self._parse_logistic(model, n)
        else:
            trees = _get(model, "trees", "model")
            if type(trees) is not list or (kind == "forest" and not trees):
                raise _fail("model.trees", "expected a non-empty list of trees")
            native = missing == "native"
            self._trees = [_parse_tree(t, f"model.trees[{i}]", n, native) for i, t in enumerate(trees)]
            self._base = _number(_get(model, "base", "model"), "model.base") if kind == "gbdt" else 0.0

        self._parse_calibration(d.get("calibration"))
        self._ranges = self._parse_ranges(d.get("feature_ranges"), names, model.get("scale") is not None)

    def _parse_logistic(self, model: dict[str, Any], n: int) -> None:
        self._coef = [float(v) for v in _numbers(_get(model, "coef", "model"), "model.coef", n)]
        self._intercept = _number(_get(model, "intercept", "model"), "model.intercept")
        center = model.get("center")
        scale = model.get("scale")
        self._center = [0.0] * n if center is None else [float(v) for v in _numbers(center, "model.center", n)]
        self._scale = [1.0] * n if scale is None else [float(v) for v in _numbers(scale, "model.scale", n)]
        if 0.0 in self._scale:
            raise _fail("model.scale", "scale values must be non-zero")
        means = [float(v) for v in _numbers(_get(model, "feature_means", "model"), "model.feature_means", n)]
        # Explanations are relative to the training mean, in standardised units.
        self._mean_z = [(m - c) / s for m, c, s in zip(means, self._center, self._scale)]
        base = self._intercept
        for w, mz in zip(self._coef, self._mean_z):
            base += w * mz
        self._lr_base = base

    def _parse_calibration(self, cal: object) -> None:
        self.calibration = None
        self._cal_kind = None
        if cal is None:
            return
        cal = _dict(cal, "calibration")
        kind = _get(cal, "kind", "calibration")
        on = cal.get("input", "probability")
        if on not in CALIBRATION_INPUTS:
            raise _fail("calibration.input", f"expected one of {CALIBRATION_INPUTS}, got {on!r}")
        if on == "log-odds" and self.kind == "forest":
            raise _fail("calibration.input", 'a forest has no log-odds output; use "probability"')
        if kind == "platt":
            self._cal_a = _number(_get(cal, "a", "calibration"), "calibration.a")
            self._cal_b = _number(_get(cal, "b", "calibration"), "calibration.b")
        elif kind == "isotonic":
            xs = [float(v) for v in _numbers(_get(cal, "x", "calibration"), "calibration.x")]
            ys = [float(v) for v in _numbers(_get(cal, "y", "calibration"), "calibration.y", len(xs))]
            if not xs:
                raise _fail("calibration.x", "needs at least one point")
            if not all(map(float.__lt__, xs, xs[1:])):
                raise _fail("calibration.x", "must be strictly increasing")
            self._cal_x, self._cal_y = xs, ys
        else:
            raise _fail("calibration.kind", f'unknown calibration {kind!r} (expected "platt" or "isotonic")')
        self._cal_kind = kind
        self._cal_on_prob = on == "probability"
        self.calibration = cal

    # -- training ranges ---------------------------------------------------

    # An artifact without recorded ranges (written before they existed): a standardised logistic model is
    # bounded this many standard deviations from its training centre; trees are bounded by construction.
    FALLBACK_SPREAD = 10.0

    def _parse_ranges(self, ranges: object, names: list[str], scaled: bool) -> list[tuple[float, float]] | None:
        """Per feature, the values seen in training: scoring clips to them (see `within_training_range`)."""
        if ranges is None:
            if self.kind == "logistic" and scaled:
                k = self.FALLBACK_SPREAD
                return [(c - k * abs(s), c + k * abs(s)) for c, s in zip(self._center, self._scale)]
            return None
        given = _dict(ranges, "feature_ranges")
        out = [(-_MAX, _MAX)] * len(names)
        for name, pair in given.items():
            if name not in names:
                raise _fail("feature_ranges", f"unknown feature {name!r}")
            lo, hi = _numbers(pair, f"feature_ranges.{name}", 2)
            if lo > hi:
                raise _fail(f"feature_ranges.{name}", "lower bound above upper bound")
            out[names.index(name)] = (float(lo), float(hi))
        return out

    def within_training_range(self, x: list[float | None]) -> list[float | None]:
        """Each known value within its training range, so no input (a build years ago) can weigh more than the
        most extreme one the model learnt from. The training side does the same (training.Fitted.raw)."""
        ranges = self._ranges
        if ranges is None:
            return x
        return [v if v is None else min(max(v, lo), hi) for v, (lo, hi) in zip(x, ranges)]

    def __repr__(self) -> str:
        return f"<PortableModel {self.kind} features={self._n} sha256={self.sha256[:12]} source={self.source!r}>"

    # -- scoring -----------------------------------------------------------

    def _prepare(self, row: Sequence[float | None]) -> list[float | None]:
        """Normalise one row: missing -> fill value (or None when routed natively)."""
        try:
            size = len(row)
        except TypeError:
            raise TypeError(
                "expected a sequence of rows, each a sequence of feature values (wrap a single row in a list)"
            ) from None
        if size != self._n:
            raise ValueError(f"expected {self._n} feature values in feature_names order, got {size}")
        out: list[float | None] = []
        append = out.append
        for i, (v, fill) in enumerate(zip(row, self._fill)):
            if v is None:
                append(fill)
                continue
            if v.__class__ is not float:
                if isinstance(v, (str, bytes)):
                    raise TypeError(f"feature {self.feature_names[i]!r}: expected a number or None, got a string")
                try:
                    v = float(v)
                except OverflowError:  # an int beyond float range
                    v = _MAX if v > 0 else -_MAX
                except (TypeError, ValueError):
                    raise TypeError(
                        f"feature {self.feature_names[i]!r}: expected a number or None, got {type(v).__name__}"
                    ) from None
            if v != v:
                append(fill)
            elif v > _MAX:
                append(_MAX)
            elif v < -_MAX:
                append(-_MAX)
            else:
                append(v)
        return self.within_training_range(out)

    def _tree_sum(self, x: list[float | None], total: float) -> float:
        for feature, threshold, left, right, missing_left, _, leaf_value in self._trees:
            if not feature:
                total += leaf_value[0]
                continue
            i = 0
            while True:
                v = x[feature[i]]
                if v is None:
                    c = left[i] if missing_left[i] else right[i]
                elif v <= threshold[i]:
                    c = left[i]
                else:
                    c = right[i]
                if c < 0:
                    total += leaf_value[~c]
                    break
                if c <= i:
                    raise _cycle(i)
                i = c
        return total

    def _logistic_z(self, x: list[float | None]) -> list[float]:
        # Same operation order as StandardScaler.transform: subtract, then divide.
        return [(v - c) / s for v, c, s in zip(x, self._center, self._scale)]  # type: ignore[operator]

    def _raw(self, x: list[float | None]) -> float:
        """Uncalibrated model output: probability (forest) or log-odds."""
        if self.kind == "forest":
            return self._tree_sum(x, 0.0) / len(self._trees)
        if self.kind == "gbdt":
            return self._tree_sum(x, self._base)
        s = 0.0
        for w, z in zip(self._coef, self._logistic_z(x)):
            s += w * z
        return s + self._intercept

    def _finish(self, raw: float) -> tuple[float, float]:
        """(calibrated, uncalibrated) probability from the raw output."""
        p = raw if self.kind == "forest" else _sigmoid(raw)
        kind = self._cal_kind
        if kind is None:
            return p, p
        s = p if self._cal_on_prob else raw
        if kind == "platt":
            return platt(self._cal_a, self._cal_b, s), p
        return isotonic(self._cal_x, self._cal_y, s), p

    @staticmethod
    def _parse_rule(rule: object, names: list[str]) -> tuple[int, float, float] | None:
        """An optional override: when feature == value, the probability is fixed.

        Used for "trust the previous outcome after a failure, let the model
        decide after a pass", which backtests better than either alone on
        some repositories.
        """
        if rule is None:
            return None
        r = _dict(rule, "rule")
        feature = _get(r, "feature", "rule")
        if feature not in names:
            raise _fail("rule.feature", f"{feature!r} is not one of the model's features")
        probability = _number(_get(r, "probability", "rule"), "rule.probability")
        if not 0.0 <= probability <= 1.0:
            raise _fail("rule.probability", "must be a probability in [0, 1]")
        return names.index(feature), _number(_get(r, "value", "rule"), "rule.value"), probability

    def _ruled(self, row: Sequence[float | None]) -> float | None:
        if self._rule is None:
            return None
        index, value, probability = self._rule
        x = row[index]
        return probability if x is not None and x == x and x == value else None

    def predict_proba(self, rows: Sequence[Sequence[float | None]], *, calibrated: bool = True) -> list[float]:
        """P(CI fails) per row; None or NaN marks a missing feature value."""
        out = []
        idx = 0 if calibrated else 1
        for row in rows:
            fixed = self._ruled(row)
            out.append(
                _checked_probability(fixed if fixed is not None else self._finish(self._raw(self._prepare(row)))[idx])
            )
        return out

    def explain(self, features: Mapping[str, float | None]) -> Explanation:
        """Saabas-style attribution of one prediction to its features."""
        names = self.feature_names
        x = self._prepare([features.get(name) for name in names])
        contrib = [0.0] * self._n
        if self.kind == "logistic":
            base = self._lr_base
            for j, (w, z, mz) in enumerate(zip(self._coef, self._logistic_z(x), self._mean_z)):
                contrib[j] = w * (z - mz)
            space = "log-odds"
        else:
            base = 0.0
            for feature, threshold, left, right, missing_left, value, leaf_value in self._trees:
                if not feature:
                    base += leaf_value[0]
                    continue
                i = 0
                here = value[0]
                base += here
                while True:
                    f = feature[i]
                    v = x[f]
                    if v is None:
                        c = left[i] if missing_left[i] else right[i]
                    elif v <= threshold[i]:
                        c = left[i]
                    else:
                        c = right[i]
                    child = leaf_value[~c] if c < 0 else value[c]
                    contrib[f] += child - here
                    if c < 0:
                        break
                    if c <= i:
                        raise _cycle(i)
                    i = c
                    here = child
            if self.kind == "forest":
                n_trees = len(self._trees)
                base /= n_trees
                contrib = [c / n_trees for c in contrib]
                space = "probability"
            else:
                base += self._base
                space = "log-odds"
        raw = self._raw(x)
        probability, raw_probability = self._finish(raw)
        fixed = self._ruled([features.get(name) for name in names])
        if fixed is not None and self._rule is not None:
            # The rule decided: credit its feature with the whole move from the model's own answer.
            ruled = [0.0] * self._n
            ruled[self._rule[0]] = fixed - probability
            return _checked_explanation(
                Explanation(
                    probability=fixed,
                    raw_probability=fixed,
                    base_value=probability,
                    contributions=dict(zip(names, ruled)),
                    space="probability",
                    model_output=fixed,
                )
            )
        return _checked_explanation(
            Explanation(
                probability=probability,
                raw_probability=raw_probability,
                base_value=base,
                contributions=dict(zip(names, contrib)),
                space=space,
                model_output=raw,
            )
        )


# -- sanity beyond the checksum ------------------------------------------------
# A checksum proves that a file is what somebody sealed, not that it is sane:
# anyone who edits a model can recompute it. These checks keep such a model
# from scoring 50, -7, inf or NaN. Kept apart from parsing, which checks types
# and shapes; see also the score check that guards every prediction.


def _validate_ranges(model: PortableModel, data: dict[str, Any]) -> None:
    """Probabilities are probabilities, and the parts shown to people are finite JSON."""
    if model.kind == "forest":  # a forest's node and leaf values are class fractions
        for i, tree in enumerate(model._trees):
            _within_unit(tree[5], f"model.trees[{i}].value")
            _within_unit(tree[6], f"model.trees[{i}].leaf_value")
    if model._cal_kind == "isotonic":
        _within_unit(model._cal_y, "calibration.y")
        if model._cal_on_prob:
            _within_unit(model._cal_x, "calibration.x")
    if model.kind == "logistic" and not (math.isfinite(model._lr_base) and all(map(math.isfinite, model._mean_z))):
        raise _fail("model", "coefficients, means and scales overflow a float")
    for key in ("provenance", "calibration", "rule"):
        try:
            canonical_json(data.get(key))
        except (TypeError, ValueError, RecursionError):
            raise _fail(key, "expected plain JSON with finite numbers") from None


def _within_unit(values: Sequence[float], where: str) -> None:
    if values and (min(values) < 0.0 or max(values) > 1.0):
        raise _fail(where, "values must be probabilities in [0, 1]")


def _require_known_features(model: PortableModel, known: Sequence[str]) -> None:
    unknown = sorted(set(model.feature_names) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ModelError(f"{model.source}: the model reads features this ci-risk does not compute: {shown}")


def _checked_probability(probability: float) -> float:
    """Every score leaves the model through here: NaN or a number outside [0, 1] is the model's bug."""
    if 0.0 <= probability <= 1.0:  # False for NaN
        return probability
    raise ScoreError(f"the model returned {probability!r}, not a probability: its artifact is broken")


def _checked_explanation(explanation: Explanation) -> Explanation:
    _checked_probability(explanation.probability)
    parts = (explanation.base_value, explanation.model_output, *explanation.contributions.values())
    if not all(map(math.isfinite, parts)):
        raise ScoreError("the model returned non-finite contributions: its artifact is broken")
    return explanation
