"""Rules: rank the likely categories of each finding and of the image.

Stage 5 of the pipeline. :func:`rank` maps the described patterns plus optional clinical
context to ranked categories with evidence, a differential and suggested work-up, from
the declarative table ``models/rules.toml`` (readable form: ``docs/rules.md``). The code
holds no medical knowledge: every prior, likelihood, modifier, differential and work-up
item is a row of the table with its source.

Scoring, per finding, is naive-Bayes style in log space::

    log w(c) = prior_weight * log prior(c)
             + pattern_weight * sum_p s_p * log P(p | c)
             + sum over fired rules of log LR_rule(c)
    score(c) = w(c) / sum_c' w(c')

where ``s_p`` are the describer's pattern scores (soft evidence, log-linear pooling),
``P(p | c)`` the table's pattern likelihoods (rows normalised), and a rule fires when
all its finding, image and context conditions hold; unlisted categories get LR 1.
Image-level scores are the mean of the findings' scores (so they stay in [0, 1] and
a category present in one finding of five scores at most 0.2).
"""

from __future__ import annotations

import math
import os
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from calcimg.context import ClinicalContext
from calcimg.describe import Description, Descriptions
from calcimg.errors import ConfigError
from calcimg.params import check_range, model_file, model_file_param
from calcimg.result import Category, CategoryScore, Pattern

__all__ = [
    "CONTEXT_VARIABLES",
    "FINDING_VARIABLES",
    "IMAGE_VARIABLES",
    "Assessment",
    "CategorySpec",
    "FindingAssessment",
    "LabSpec",
    "Rule",
    "RuleTable",
    "RulesParams",
    "load_table",
    "parse_table",
    "rank",
    "score_finding",
]

TABLE_SCHEMA = "calcimg.rules/1"

# The vocabulary the table may test: name -> kind ("number", "bool", "str").
FINDING_VARIABLES: dict[str, str] = {
    "pattern": "str",
    "pattern_score": "number",
    "area_mm2": "number",
    # descriptors (COMMON.md vocabulary; units in names)
    "n_particles": "number",
    "particle_diameter_mean_mm": "number",
    "particle_diameter_max_mm": "number",
    "particle_size_cv": "number",
    "similar_sized": "bool",
    "extent_mm": "number",
    "density_rel_cortex": "number",
    "cnr": "number",
    "linearity": "number",
    "curvature_per_mm": "number",
    "parallel_pair": "bool",
    "line_spacing_mm": "number",
    "line_thickness_mm": "number",
    "lucent_center": "bool",
    "ring_and_arc": "bool",
    "septa": "bool",
    "solidity": "number",
    "eccentricity": "number",
    "distribution": "str",
    # location
    "nearest_joint": "str",
    "distance_to_joint_mm": "number",
    "intra_articular": "bool",
    "distance_to_bone_mm": "number",
}
IMAGE_VARIABLES: dict[str, str] = {
    "n_findings": "number",
    "n_sites": "number",
    "total_area_mm2": "number",
    "distribution": "str",
    "body_part": "str",
}
CONTEXT_VARIABLES: dict[str, str] = {
    "serum_calcium_mg_dl": "number",
    "serum_phosphate_mg_dl": "number",
    "albumin_g_dl": "number",
    "alkaline_phosphatase_u_l": "number",
    "renal_failure": "bool",
    "dialysis": "bool",
    "connective_tissue_disease": "str",
    "trauma": "bool",
    "calcium_or_phosphate_administration": "bool",
    "age_years": "number",
    "ca_x_p_mg2_dl2": "number",
    "corrected_calcium_mg_dl": "number",
}
_SCOPES: dict[str, dict[str, str]] = {
    "finding": FINDING_VARIABLES,
    "image": IMAGE_VARIABLES,
    "context": CONTEXT_VARIABLES,
}
_OPS: dict[str, tuple[str, ...]] = {
    "gt": ("number",),
    "ge": ("number",),
    "lt": ("number",),
    "le": ("number",),
    "eq": ("number", "bool", "str"),
    "ne": ("number", "bool", "str"),
    "in": ("number", "str"),
    "contains": ("str",),
    "known": ("number", "bool", "str"),
}

_TOP_KEYS = ("schema", "description", "scoring", "categories", "labs", "rules")
_SCORING_KEYS = ("prior_weight", "pattern_weight", "source")
_CATEGORY_KEYS = (
    "label",
    "prevalence",
    "prevalence_text",
    "patterns",
    "source",
    "differential",
    "imaging",
)
_LAB_KEYS = ("item", "needs", "source")
_RULE_KEYS = ("id", "finding", "image", "context", "lr", "evidence", "source")


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesParams:
    """Parameters of :func:`rank` (section ``[rules]``)."""

    table: str = model_file_param("rules.toml")
    """The rule table, a file name in ``models/`` or a path."""
    max_categories: int = 5
    """How many categories to report per finding and per image (top k)."""
    min_score: float = 0.01
    """Categories scoring below this are not reported (the top one always is)."""
    differential_min_score: float = 0.15
    """Image-level score from which a category's differential and imaging work-up are
    listed (the top category's always are)."""

    def __post_init__(self) -> None:
        if not self.table:
            raise ConfigError("parameter rules.table is empty; expected a file name or path")
        check_range("rules.max_categories", self.max_categories, 1, len(Category))
        check_range("rules.min_score", self.min_score, 0.0, 1.0)
        check_range("rules.differential_min_score", self.differential_min_score, 0.0, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingAssessment:
    """Ranked categories for one finding."""

    finding_id: int
    categories: tuple[CategoryScore, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """The rule layer's output for one image."""

    findings: tuple[FindingAssessment, ...] = ()
    categories: tuple[CategoryScore, ...] = ()
    differential: tuple[str, ...] = ()
    workup: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Condition:
    """One test of a variable: ``scope.name op value``."""

    scope: str
    name: str
    op: str
    value: Any

    def holds(self, value: Any) -> bool:
        """True when the test passes; a missing value fails every test but ``known``."""
        if self.op == "known":
            return (value is not None) is bool(self.value)
        if value is None:
            return False
        if isinstance(value, str):
            value = value.lower()
        want = self.value
        if self.op == "eq":
            return bool(value == want)
        if self.op == "ne":
            return bool(value != want)
        if self.op == "in":
            return value in want
        if self.op == "contains":
            return isinstance(value, str) and any(w in value for w in want)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.op == "gt":
            return bool(value > want)
        if self.op == "ge":
            return bool(value >= want)
        if self.op == "lt":
            return bool(value < want)
        return bool(value <= want)  # le

    def describe(self) -> str:
        """The condition as text, e.g. ``context.ca_x_p_mg2_dl2 > 70``."""
        sym = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=", "ne": "!="}
        if self.op in sym:
            return f"{self.scope}.{self.name} {sym[self.op]} {_fmt_value(self.value)}"
        if self.op == "known":
            return f"{self.scope}.{self.name} is {'known' if self.value else 'unknown'}"
        return f"{self.scope}.{self.name} {self.op} {_fmt_value(list(self.value))}"


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True, slots=True)
class Rule:
    """A row of the table: when every condition holds, multiply the categories' LRs."""

    id: str
    conditions: tuple[Condition, ...]
    lr: Mapping[Category, float]
    evidence: str
    source: str


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category: prior prevalence, pattern likelihoods, differential, imaging."""

    name: Category
    label: str
    prevalence: float
    prevalence_text: str
    patterns: Mapping[Pattern, float]
    """P(pattern | category), normalised to sum to 1."""
    source: str
    differential: tuple[str, ...]
    imaging: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabSpec:
    """A lab work-up item, suggested when any of ``needs`` is unknown."""

    item: str
    needs: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class RuleTable:
    """The parsed, validated rule table."""

    path: str
    description: str
    prior_weight: float
    pattern_weight: float
    scoring_source: str
    categories: Mapping[Category, CategorySpec]
    labs: tuple[LabSpec, ...]
    rules: tuple[Rule, ...] = field(default=())


def _unknown_keys(where: str, d: Mapping[str, Any], valid: Sequence[str]) -> None:
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
        )


def _req(where: str, d: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise ConfigError(f"{where}: missing required key {key!r}")
    v = d[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, float, (int, float))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key} = {v!r}; expected {names}")
    return v


def _str_list(where: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where} = {v!r}; expected a list of strings")
    return tuple(v)


def _category(where: str, name: str) -> Category:
    try:
        return Category(name)
    except ValueError:
        raise ConfigError(
            f"{where}: unknown category {name!r}; valid categories: "
            f"{', '.join(c.value for c in Category)}"
        ) from None


def _parse_condition(where: str, scope: str, name: str, spec: Any) -> Condition:
    variables = _SCOPES[scope]
    if name not in variables:
        raise ConfigError(
            f"{where}: unknown {scope} variable {name!r}; valid {scope} variables: "
            f"{', '.join(variables)}"
        )
    kind = variables[name]
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ConfigError(
                f"{where}.{name} = {spec!r}; expected one operator per condition "
                f"(write two rules or two variables); operators: {', '.join(_OPS)}"
            )
        op, value = next(iter(spec.items()))
        if op not in _OPS:
            raise ConfigError(
                f"{where}.{name}: unknown operator {op!r}; valid operators: {', '.join(_OPS)}"
            )
    elif isinstance(spec, list):
        op, value = "in", spec
    else:
        op, value = "eq", spec
    if kind not in _OPS[op]:
        raise ConfigError(f"{where}.{name}: operator {op!r} does not apply to a {kind} variable")
    w = f"{where}.{name}"
    if op == "known":
        if not isinstance(value, bool):
            raise ConfigError(f"{w}.known = {value!r}; expected true or false")
        return Condition(scope, name, op, value)
    items = value if op in ("in", "contains") else [value]
    if op in ("in", "contains") and (not isinstance(value, list) or not value):
        if op == "contains" and isinstance(value, str):
            items = [value]
        else:
            raise ConfigError(f"{w}.{op} = {value!r}; expected a non-empty list")
    checked = [_check_literal(w, kind, x) for x in items]
    if name == "pattern":
        for x in checked:
            if x not in {p.value for p in Pattern}:
                raise ConfigError(
                    f"{w}: unknown pattern {x!r}; valid patterns: "
                    f"{', '.join(p.value for p in Pattern)}"
                )
    if op in ("in", "contains"):
        return Condition(scope, name, op, tuple(checked))
    return Condition(scope, name, op, checked[0])


def _check_literal(where: str, kind: str, x: Any) -> Any:
    if kind == "number":
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ConfigError(f"{where} = {x!r}; expected a number")
        return float(x)
    if kind == "bool":
        if not isinstance(x, bool):
            raise ConfigError(f"{where} = {x!r}; expected true or false")
        return x
    if not isinstance(x, str):
        raise ConfigError(f"{where} = {x!r}; expected a string")
    return x.lower()


_TEMPLATE_FIELDS = (
    set(FINDING_VARIABLES) | {f"image_{k}" for k in IMAGE_VARIABLES} | set(CONTEXT_VARIABLES)
)


def _check_template(where: str, template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: bad evidence template {template!r}: {exc}") from exc
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in _TEMPLATE_FIELDS:
            raise ConfigError(
                f"{where}: unknown field {{{name}}} in evidence template; valid fields: "
                f"{', '.join(sorted(_TEMPLATE_FIELDS))}"
            )
        if spec:
            try:
                format(1.0, spec)
            except ValueError as exc:
                raise ConfigError(f"{where}: bad format {spec!r} for {{{name}}}") from exc


def parse_table(data: Mapping[str, Any], *, where: str = "rules") -> RuleTable:
    """Validate a parsed rule table (the TOML as a dict) and build a :class:`RuleTable`.

    Raises
    ------
    ConfigError
        Unknown keys (the valid ones are listed), unknown categories, patterns,
        variables or operators, missing categories, or values of the wrong type.
    """
    _unknown_keys(where, data, _TOP_KEYS)
    schema = data.get("schema")
    if schema != TABLE_SCHEMA:
        raise ConfigError(f"{where}: schema = {schema!r}; expected {TABLE_SCHEMA!r}")
    scoring = _req(where, data, "scoring", dict)
    _unknown_keys(f"{where}: [scoring]", scoring, _SCORING_KEYS)
    prior_weight = float(_req(f"{where}: [scoring]", scoring, "prior_weight", (int, float)))
    pattern_weight = float(_req(f"{where}: [scoring]", scoring, "pattern_weight", (int, float)))
    check_range("rules table scoring.prior_weight", prior_weight, 0.0, 1.0)
    check_range("rules table scoring.pattern_weight", pattern_weight, 0.0, 10.0)

    cats_raw = _req(where, data, "categories", dict)
    categories: dict[Category, CategorySpec] = {}
    for name, spec in cats_raw.items():
        w = f"{where}: [categories.{name}]"
        cat = _category(w, name)
        if not isinstance(spec, dict):
            raise ConfigError(f"{w}: expected a table")
        _unknown_keys(w, spec, _CATEGORY_KEYS)
        prevalence = float(_req(w, spec, "prevalence", (int, float)))
        check_range(f"categories.{name}.prevalence", prevalence, 0.0, 1.0, low_open=True)
        pats = _req(w, spec, "patterns", dict)
        missing = [p.value for p in Pattern if p.value not in pats]
        extra = sorted(set(pats) - {p.value for p in Pattern})
        if missing or extra:
            raise ConfigError(
                f"{w}.patterns: expected a likelihood for each of "
                f"{', '.join(p.value for p in Pattern)}; missing {missing}, unknown {extra}"
            )
        for p, v in pats.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"{w}.patterns.{p} = {v!r}; expected a number > 0")
        total = float(sum(pats.values()))
        categories[cat] = CategorySpec(
            name=cat,
            label=str(spec.get("label", cat.value)),
            prevalence=prevalence,
            prevalence_text=str(_req(w, spec, "prevalence_text", str)),
            patterns={Pattern(p): float(v) / total for p, v in pats.items()},
            source=_req(w, spec, "source", str),
            differential=_str_list(f"{w}.differential", spec.get("differential", [])),
            imaging=_str_list(f"{w}.imaging", spec.get("imaging", [])),
        )
    missing_cats = [c.value for c in Category if c not in categories]
    if missing_cats:
        raise ConfigError(f"{where}: [categories] lacks {', '.join(missing_cats)}")

    labs: list[LabSpec] = []
    for i, lab in enumerate(data.get("labs", [])):
        w = f"{where}: labs[{i}]"
        if not isinstance(lab, dict):
            raise ConfigError(f"{w}: expected a table")
        _unknown_keys(w, lab, _LAB_KEYS)
        needs = _str_list(f"{w}.needs", _req(w, lab, "needs", list))
        for n in needs:
            if n not in CONTEXT_VARIABLES:
                raise ConfigError(
                    f"{w}.needs: unknown context variable {n!r}; valid: "
                    f"{', '.join(CONTEXT_VARIABLES)}"
                )
        labs.append(LabSpec(_req(w, lab, "item", str), needs, _req(w, lab, "source", str)))

    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("rules", [])):
        w = f"{where}: rules[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{w}: expected a table")
        _unknown_keys(w, raw, _RULE_KEYS)
        rid = _req(w, raw, "id", str)
        w = f"{where}: rule {rid!r}"
        if rid in seen:
            raise ConfigError(f"{w}: duplicate rule id")
        seen.add(rid)
        conditions: list[Condition] = []
        for scope in _SCOPES:
            conds = raw.get(scope, {})
            if not isinstance(conds, dict):
                raise ConfigError(f"{w}.{scope}: expected a table of conditions")
            conditions += [_parse_condition(f"{w}.{scope}", scope, k, v) for k, v in conds.items()]
        if not conditions:
            raise ConfigError(f"{w}: no conditions; expected finding, image or context tests")
        lr_raw = _req(w, raw, "lr", dict)
        if not lr_raw:
            raise ConfigError(f"{w}.lr is empty; expected category = likelihood ratio")
        lr: dict[Category, float] = {}
        for name, v in lr_raw.items():
            cat = _category(f"{w}.lr", name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"{w}.lr.{name} = {v!r}; expected a number > 0")
            lr[cat] = float(v)
        evidence = _req(w, raw, "evidence", str)
        _check_template(w, evidence)
        rules.append(Rule(rid, tuple(conditions), lr, evidence, _req(w, raw, "source", str)))

    return RuleTable(
        path=where,
        description=str(data.get("description", "")),
        prior_weight=prior_weight,
        pattern_weight=pattern_weight,
        scoring_source=str(scoring.get("source", "")),
        categories=categories,
        labs=tuple(labs),
        rules=tuple(rules),
    )


def table_path(table: str) -> Path:
    """Resolve ``RulesParams.table``: a path, or a file name in ``models/``."""
    return model_file(table, qualname="rules.table", expected="a rule table such as 'rules.toml'")


def load_table(table: str = "rules.toml") -> RuleTable:
    """Load and validate a rule table (cached per path and modification time).

    Parameters
    ----------
    table : str
        A path, or a file name in ``models/`` (:func:`calcimg.params.models_dir`).

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, or a table that fails :func:`parse_table`.
    """
    p = table_path(table).resolve()
    return _load_cached(str(p), os.stat(p).st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> RuleTable:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_table(data, where=path)


# ---------------------------------------------------------------------------- scoring


def _plain(v: Any) -> Any:
    """numpy scalars to Python; strings lower-cased later by the condition."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            v = v.item()
        except (TypeError, ValueError):
            return v
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _finding_vars(d: Description) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in FINDING_VARIABLES}
    for k, v in d.descriptors.items():
        if k in out:
            out[k] = _plain(v)
    scores = {str(k): float(v) for k, v in d.pattern_scores.items()}
    out["pattern"] = str(d.pattern)
    out["pattern_score"] = scores.get(str(d.pattern))
    out["area_mm2"] = _plain(d.area_mm2)
    loc = d.location
    out["nearest_joint"] = loc.nearest_joint
    out["distance_to_joint_mm"] = _plain(loc.distance_to_joint_mm)
    out["intra_articular"] = bool(loc.intra_articular)
    out["distance_to_bone_mm"] = _plain(loc.distance_to_bone_mm)
    return out


def _image_vars(descriptions: Descriptions) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in IMAGE_VARIABLES}
    for k, v in descriptions.image_descriptors.items():
        if k in out:
            out[k] = _plain(v)
    if out["n_findings"] is None:
        out["n_findings"] = len(descriptions.items)
    return out


def _context_vars(context: ClinicalContext | None) -> dict[str, Any]:
    if context is None:
        return {k: None for k in CONTEXT_VARIABLES}
    return context.variables()


class _Formatter(string.Formatter):
    """Formats ``None`` as "unknown" whatever the format spec."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "unknown"
        if isinstance(value, bool):
            return "yes" if value else "no"
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _Formatter()


def _fmt_lr(lr: float) -> str:
    return f"x{lr:.3g}"


def score_finding(
    description: Description,
    *,
    image: Mapping[str, Any],
    context: ClinicalContext | None,
    table: RuleTable,
) -> tuple[CategoryScore, ...]:
    """All categories for one finding, ranked, with scores summing to 1 and evidence.

    Parameters
    ----------
    description : Description
    image : mapping
        Image-level variables (:data:`IMAGE_VARIABLES`).
    context : ClinicalContext or None
    table : RuleTable

    Returns
    -------
    tuple of CategoryScore
        Every category of the table, best first.
    """
    fvars = _finding_vars(description)
    cvars = _context_vars(context)
    scopes = {"finding": fvars, "image": image, "context": cvars}
    fields = {**fvars, **{f"image_{k}": v for k, v in image.items()}, **cvars}
    scores = {str(k): float(v) for k, v in description.pattern_scores.items()}
    if not scores or sum(scores.values()) <= 0:
        scores = {str(description.pattern): 1.0}
    total = sum(scores.values())

    logw: dict[Category, float] = {}
    evidence: dict[Category, list[tuple[float, str]]] = {}
    for cat, spec in table.categories.items():
        pat_ll = sum(
            (s / total) * math.log(spec.patterns[Pattern(p)])
            for p, s in scores.items()
            if s > 0 and p in {x.value for x in Pattern}
        )
        logw[cat] = table.prior_weight * math.log(spec.prevalence) + table.pattern_weight * pat_ll
        top_p = str(description.pattern)
        evidence[cat] = [
            (
                math.inf,
                f"prior: {spec.prevalence_text}",
            ),
            (
                1e9,
                f"pattern {top_p} (score {scores.get(top_p, 0.0):.2f}); "
                f"P({top_p} | {cat.value}) = {spec.patterns[Pattern(top_p)]:.2f}",
            ),
        ]
    for rule in table.rules:
        if not all(c.holds(scopes[c.scope].get(c.name)) for c in rule.conditions):
            continue
        sentence = _FORMATTER.format(rule.evidence, **fields)
        for cat, lr in rule.lr.items():
            logw[cat] += math.log(lr)
            evidence[cat].append((abs(math.log(lr)), f"{sentence} ({_fmt_lr(lr)})"))

    top = max(logw.values())
    weights = {c: math.exp(v - top) for c, v in logw.items()}
    z = sum(weights.values())
    ranked = sorted(weights, key=lambda c: (-weights[c], c.value))
    out = []
    for cat in ranked:
        ev = [s for _, s in sorted(evidence[cat], key=lambda t: -t[0])]
        out.append(CategoryScore(name=cat, score=round(weights[cat] / z, 4), evidence=tuple(ev)))
    return tuple(out)


def _report(ranked: Sequence[CategoryScore], params: RulesParams) -> tuple[CategoryScore, ...]:
    kept = [c for c in ranked[: params.max_categories] if c.score >= params.min_score]
    return tuple(kept) if kept else tuple(ranked[:1])


def rank(
    descriptions: Descriptions,
    *,
    context: ClinicalContext | None,
    params: RulesParams,
) -> Assessment:
    """Rank categories for each finding and for the image.

    Parameters
    ----------
    descriptions : Descriptions
        The describer's findings (pattern, pattern_scores, descriptors, location) and
        image-level descriptors.
    context : ClinicalContext or None
        Labs and history; None when nothing is known.
    params : RulesParams
        ``table`` names the rule table (``models/rules.toml`` by default).

    Returns
    -------
    Assessment
        Per finding: the top ``max_categories`` categories (scores of all categories
        sum to 1) with their evidence. Per image: categories ranked by the mean of the
        findings' scores, with the ids of the findings that report them; the
        differential and imaging work-up of the leading categories; the labs the
        context lacks. An image without findings gets an empty assessment.

    Raises
    ------
    ConfigError
        When the rule table is missing or invalid.

    Examples
    --------
    >>> from calcimg.describe import Description, Descriptions
    >>> from calcimg.result import Location, Pattern
    >>> d = Description(detection_id=1, pattern=Pattern.CHONDRAL_LINE,
    ...     pattern_scores={Pattern.CHONDRAL_LINE: 1.0}, descriptors={},
    ...     location=Location(nearest_joint="knee", intra_articular=True),
    ...     area_mm2=12.0, centroid_rc=(10.0, 10.0))
    >>> a = rank(Descriptions(items=(d,)), context=None, params=RulesParams())
    >>> a.categories[0].name.value
    'chondrocalcinosis_cppd'
    """
    table = load_table(params.table)
    if not descriptions.items:
        return Assessment()
    image = _image_vars(descriptions)
    per_finding: list[FindingAssessment] = []
    all_ranked: list[tuple[int, tuple[CategoryScore, ...]]] = []
    for d in descriptions.items:
        ranked = score_finding(d, image=image, context=context, table=table)
        all_ranked.append((d.detection_id, ranked))
        per_finding.append(
            FindingAssessment(finding_id=d.detection_id, categories=_report(ranked, params))
        )

    n = len(all_ranked)
    reported = {fa.finding_id: {c.name for c in fa.categories} for fa in per_finding}
    image_scores: list[CategoryScore] = []
    for cat in table.categories:
        per = [(fid, next(c for c in r if c.name is cat)) for fid, r in all_ranked]
        mean = sum(c.score for _, c in per) / n
        ids = tuple(fid for fid, _ in per if cat in reported[fid])
        ev: list[str] = []
        for fid, c in sorted(per, key=lambda t: -t[1].score):
            if cat not in reported[fid]:
                continue
            ev.append(f"finding {fid}: {c.score:.2f}")
            for s in c.evidence:
                if not s.startswith(("prior:", "pattern ")) and s not in ev:
                    ev.append(s)
        image_scores.append(
            CategoryScore(name=cat, score=round(mean, 4), evidence=tuple(ev), finding_ids=ids)
        )
    image_scores.sort(key=lambda c: (-c.score, c.name.value))
    image_ranked = _report(image_scores, params)

    leading = [
        c.name
        for i, c in enumerate(image_ranked)
        if i == 0 or c.score >= params.differential_min_score
    ]
    differential: list[str] = []
    imaging: list[str] = []
    for cat in leading:
        spec = table.categories[cat]
        differential += [x for x in spec.differential if x not in differential]
        imaging += [x for x in spec.imaging if x not in imaging]
    cvars = _context_vars(context)
    labs = [lab.item for lab in table.labs if any(cvars.get(n) is None for n in lab.needs)]
    workup = labs + [x for x in imaging if x not in labs]
    return Assessment(
        findings=tuple(per_finding),
        categories=image_ranked,
        differential=tuple(differential),
        workup=tuple(workup),
    )
