"""Policies: YAML -> frozen models, with errors that name the file, the field and valid choices."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from scaler.alerts.settings import AlertSettings
from scaler.capacity import CapacitySettings
from scaler.control.settings import RailSettings, StateSettings, TypeChangeSettings
from scaler.errors import InputError, PolicyError
from scaler.instances.alternatives import InstanceConstraints
from scaler.instances.catalog import Catalog, bundled_catalog, load_snapshot
from scaler.models import Place, group_key

if TYPE_CHECKING:
    import yaml
from scaler.rules import rules
from scaler.rules.base import Rule, RuleContext
from scaler.sources.metric_map import MetricOverride, check_signal_names, resolve_metrics

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MIN_SIZE",
    "AccountSettings",
    "GroupPolicy",
    "LiveSettings",
    "Policy",
    "RulesConfig",
    "check_instances",
    "default_policy",
    "is_account_id",
    "is_region",
    "load_policy",
    "parse_policy",
    "policy_schema",
]

DEFAULT_MIN_SIZE = 1
DEFAULT_MAX_SIZE = 100


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@cache
def _rules_config_model() -> type[BaseModel]:
    """One optional settings block per registered rule; unknown rule names are rejected."""
    fields: dict[str, Any] = {
        name: (rule.Settings, Field(default_factory=rule.Settings, description=_first_line(rule)))
        for name, rule in rules.items()
    }
    return create_model("RulesConfig", __config__=ConfigDict(frozen=True, extra="forbid"), **fields)


def _first_line(rule: type[Rule]) -> str:
    return (rule.__doc__ or rule.name).strip().splitlines()[0]


RulesConfig = _rules_config_model()

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")


def is_account_id(value: object) -> bool:
    """True for an AWS account id as AWS writes it: 12 digits (a string)."""
    return isinstance(value, str) and value.isascii() and _ACCOUNT_ID.fullmatch(value) is not None


def is_region(value: object) -> bool:
    """True for a region code such as eu-west-1 (not a display name such as "EU (Ireland)")."""
    return isinstance(value, str) and value.isascii() and _REGION.fullmatch(value) is not None


def _account_id(value: Any) -> Any:
    """An account id as written: YAML reads an unquoted one as a number (and 0123... as octal)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _ACCOUNT_ID.match(text):
        raise ValueError(
            f"{value!r} is not an account id: it is 12 digits; quote it "
            '("012345678901") so YAML keeps it as written'
        )
    return text


class AccountSettings(_Strict):
    """How scaler reaches one other account: the role it assumes there, how it reads metrics."""

    role_arn: str = Field(
        description="The role scaler assumes in this account (STS AssumeRole) to read its groups "
        "and, in apply mode, act on them: arn:aws:iam::ACCOUNT:role/NAME."
    )
    observability: Literal["monitoring"] | None = Field(
        None,
        description="monitoring: this account shares its CloudWatch metrics with the account "
        "scaler runs in (CloudWatch cross-account observability), so metrics are read there, "
        "each query naming this account; unset: read through role_arn.",
    )

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError(
                f"{value!r} is not a role ARN; write it as arn:aws:iam::ACCOUNT:role/NAME"
            )
        return value


class GroupPolicy(_Strict):
    """One scaling group: an Auto Scaling group and the SQS queue it drains."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$", description="Group name in output."
    )
    auto_scaling_group: str | None = Field(None, description="ASG name; defaults to `name`.")
    queue: str | None = Field(None, description="SQS queue name or URL; defaults to `name`.")
    account: str | None = Field(
        None,
        description="The account the group is in (12 digits, listed under `accounts:`); "
        "default: the account of scaler's own credentials.",
    )
    region: str | None = Field(
        None, description="The group's region; default: scaler's own (--region, the boto3 chain)."
    )
    instance_type: str | None = Field(
        None, description="Instance type, when it cannot be read from the group (backtests)."
    )
    min_size: int | None = Field(None, ge=0, description="Never advise below this.")
    max_size: int | None = Field(None, ge=1, description="Never advise above this.")
    cpu_target_pct: float = Field(
        60.0, gt=0, le=100, description="CPU target of the group's existing scaling policy."
    )
    capacity: CapacitySettings = Field(default_factory=CapacitySettings)
    instance_choice: InstanceConstraints = Field(
        default_factory=InstanceConstraints,
        description="Which instance types advice may propose instead of the current one.",
    )
    rules: RulesConfig = Field(default_factory=RulesConfig)  # type: ignore[valid-type]
    rails: RailSettings = Field(default_factory=RailSettings)
    type_change: TypeChangeSettings = Field(default_factory=TypeChangeSettings)
    metrics: dict[str, MetricOverride] = Field(
        default_factory=dict,
        description="Per-signal CloudWatch metric overrides (namespace, dimensions, stat, ...).",
    )

    @field_validator("account", mode="before")
    @classmethod
    def _account(cls, value: Any) -> Any:
        return None if value is None else _account_id(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"{value!r} is not a region name; write one like eu-west-1")
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _known_signals(cls, value: Any) -> Any:
        if isinstance(value, dict):
            check_signal_names(value)  # before the overrides' own fields are validated
        return value

    @field_validator("metrics")
    @classmethod
    def _complete(cls, value: dict[str, MetricOverride]) -> dict[str, MetricOverride]:
        resolve_metrics(value)  # e.g. work_latency has no default and needs its metric named
        return value

    @model_validator(mode="after")
    def _bounds_ordered(self) -> GroupPolicy:
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise ValueError(f"min_size {self.min_size} is above max_size {self.max_size}")
        return self

    @property
    def asg_name(self) -> str:
        """The Auto Scaling group this policy group controls."""
        return self.auto_scaling_group or self.name

    @property
    def queue_name(self) -> str:
        """The queue this group drains (a name or URL)."""
        return self.queue or self.name

    @property
    def place(self) -> Place:
        """The account and region the group is in, as the policy names them."""
        return Place(account=self.account, region=self.region)

    @property
    def state_key(self) -> str:
        """The Auto Scaling group's key in state, leases and audit (`group_key`)."""
        return group_key(self.asg_name, account=self.account, region=self.region)

    def bounds(self, group_min: int | None = None, group_max: int | None = None) -> tuple[int, int]:
        """[min, max] for advice: the tighter of the group's own and the policy's."""
        lo = max(x for x in (group_min, self.min_size, 0) if x is not None)
        hi = (
            min(x for x in (group_max, self.max_size) if x is not None)
            if (group_max is not None or self.max_size is not None)
            else DEFAULT_MAX_SIZE
        )
        if group_min is None and self.min_size is None:
            lo = DEFAULT_MIN_SIZE
        return lo, max(lo, hi)

    def enabled_rules(self) -> list[Rule]:
        """Instances of every enabled rule, each with this group's settings."""
        out = []
        for name, rule in rules.items():
            settings = getattr(self.rules, name)
            if settings.enabled:
                out.append(rule(settings))
        return out

    def context(self, instance: Any = None, catalog: Catalog | None = None) -> RuleContext:
        """What the rules need to know about the fleet beyond its metrics.

        `catalog` is the policy's catalog (its prices, any refreshed snapshot); rules read
        instance facts and prices only through it.
        """
        return RuleContext(
            instance=instance,
            cpu_target_pct=self.cpu_target_pct,
            catalog=catalog or bundled_catalog(),
            instance_choice=self.instance_choice,
        )


class LiveSettings(_Strict):
    """How a live tick reads CloudWatch."""

    window_minutes: int = Field(
        180,
        ge=30,
        le=1440,
        description="Minutes of metrics each tick reads (default 180: enough for the burst "
        "model and sustained spans; trend rules judge hours, so raise it for them).",
    )
    max_data_age_minutes: int = Field(
        10,
        ge=1,
        le=60,
        description="Queue and instance data older than this at a tick is stale: advice still "
        "shows, but the rails never scale in on it (default 10; CloudWatch lags a few minutes).",
    )
    full_read_every_minutes: int = Field(
        15,
        ge=1,
        le=60,
        description="While a group's queue is calm and nothing is open, read its CloudWatch "
        "metrics this often and only its queue's depth (SQS) in between, carrying the last "
        "read's findings and proposal forward (the advisor's own cost: README, What it costs "
        "to run). Default 15; 1 reads them every tick.",
    )


class Policy(_Strict):
    """A policy file: how scaler watches and advises a set of scaling groups."""

    version: Literal[1] = Field(1, description="Policy format version.")
    mode: Literal["dry-run", "apply"] = Field(
        "dry-run", description="dry-run only advises; apply may act within the rails."
    )
    groups: list[GroupPolicy] = Field(min_length=1)
    prices: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="USD per instance-hour by type (your own discounts); overrides the "
        "bundled on-demand table.",
    )
    state: StateSettings = Field(default_factory=StateSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    instance_catalog: str | None = Field(
        None,
        description="A snapshot from `scaler catalog refresh` (a path, relative to this file) "
        "that advise, run and backtest use instead of the bundled catalog.",
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings,
        description="Where `scaler enrich` sends enriched pages (PagerDuty, Slack, SNS, stdout).",
    )
    accounts: dict[str, AccountSettings] = Field(
        default_factory=dict,
        description="Other accounts groups may name (`account:`), by 12-digit account id: the "
        "role scaler assumes in each, and how it reads their metrics.",
    )

    @field_validator("accounts", mode="before")
    @classmethod
    def _account_ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_account_id(key): settings for key, settings in value.items()}
        return value

    @model_validator(mode="after")
    def _accounts_known(self) -> Policy:
        for account, settings in self.accounts.items():
            match = _ROLE_ARN.match(settings.role_arn)
            if match and match.group(1) != account:
                raise ValueError(
                    f"accounts.{account}.role_arn names a role in account {match.group(1)}; "
                    f"give the role in account {account} (arn:aws:iam::{account}:role/NAME)"
                )
        for i, group in enumerate(self.groups):
            if group.account is not None and group.account not in self.accounts:
                known = ", ".join(self.accounts) or "none yet"
                raise ValueError(
                    f"groups[{i}].account {group.account} is not under accounts: (known: "
                    f"{known}); add it there with the role_arn scaler assumes in it"
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"group names must be unique; repeated: {', '.join(dupes)}")
        return self

    def group(self, name: str) -> GroupPolicy:
        """The group called `name`, or a PolicyError listing the groups."""
        for g in self.groups:
            if g.name == name:
                return g
        raise PolicyError(f"no group {name!r} in the policy; groups: {', '.join(self.names())}")

    def names(self) -> list[str]:
        """Group names in file order."""
        return [g.name for g in self.groups]

    def places(self) -> dict[Place, list[GroupPolicy]]:
        """The groups by the account and region they are in, in file order."""
        out: dict[Place, list[GroupPolicy]] = {}
        for group in self.groups:
            out.setdefault(group.place, []).append(group)
        return out

    def catalog(self, base: Catalog | None = None) -> Catalog:
        """The instance catalog with this policy's prices applied: `base` if given, else the
        policy's `instance_catalog` snapshot, else the bundled one."""
        if base is None and self.instance_catalog is not None:
            try:
                base = load_snapshot(self.instance_catalog)
            except (InputError, OSError, ValueError) as exc:
                raise PolicyError(
                    f"instance_catalog {self.instance_catalog}: cannot be read ({exc}); "
                    "make one with `scaler catalog refresh --output PATH`"
                ) from exc
        return (base or bundled_catalog()).with_prices(self.prices)


def default_policy(name: str = "default") -> Policy:
    """The policy used when none is given: one group, every default."""
    return Policy(groups=[GroupPolicy(name=name)])


def policy_schema() -> dict[str, Any]:
    """JSON Schema of the policy format, for editors."""
    return Policy.model_json_schema()


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every problem is a PolicyError naming file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc}") from exc
    return parse_policy(text, str(path), base_dir=path.parent)


@cache
def _unique_key_loader() -> type[yaml.SafeLoader]:
    """A YAML loader that rejects a key given twice in one mapping (YAML keeps the last).

    Made on first use: PyYAML loads only where a policy file is read (a backtest on the
    default policy starts 14 ms sooner without it).
    """
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice in one mapping (the first would be ignored)",
                        key_node.start_mark,
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def parse_policy(text: str, where: str = "<policy>", *, base_dir: Path | None = None) -> Policy:
    """Validate policy YAML text; `where` names it in errors.

    Beyond the schema, instance types, families and priced types must be known to the
    policy's catalog (the closest known ones are named), and duplicate keys are errors.
    `base_dir` resolves a relative `instance_catalog` (default: the working directory).
    """

    import yaml

    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{where}:{at} not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise PolicyError(
            f"{where}: a policy is a mapping with a 'groups' list, got {type(data).__name__}"
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_explain(exc, where)) from exc
    if policy.instance_catalog is not None and base_dir is not None:
        resolved = base_dir / policy.instance_catalog
        policy = policy.model_copy(update={"instance_catalog": str(resolved)})
    try:
        catalog = policy.catalog()
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from exc
    problems = check_instances(policy, catalog)
    if problems:
        lines = [f"{where}: {len(problems)} problem(s) in the policy:"]
        lines += [f"  {p}" for p in problems]
        lines.append(
            "  (`scaler catalog refresh` fetches every type from EC2; name its output in "
            "instance_catalog)"
        )
        raise PolicyError("\n".join(lines))
    return policy


def check_instances(policy: Policy, catalog: Catalog) -> list[str]:
    """Instance types, families and priced types the catalog does not know, each with the
    closest known ones (the same check a backtest makes when it looks a type up)."""
    types_known = sorted(t.instance_type for t in catalog.all())
    families_known = sorted({t.family for t in catalog.all()})
    where = f"the instance catalog (taken {catalog.taken})"

    def unknown(field: str, name: str, known: list[str], what: str) -> str:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known[:12])}"
        return f"{field}: {what} {name!r} is not in {where}; {hint}"

    problems = []
    for i, group in enumerate(policy.groups):
        if group.instance_type and group.instance_type not in types_known:
            problems.append(
                unknown(f"groups[{i}].instance_type", group.instance_type, types_known, "type")
            )
        for family in group.instance_choice.families or []:
            if family not in families_known:
                field = f"groups[{i}].instance_choice.families"
                problems.append(unknown(field, family, families_known, "family"))
    for name in policy.prices:
        if name not in types_known:
            problems.append(unknown(f"prices.{name}", name, types_known, "priced type"))
    return problems


def _explain(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: {exc.error_count()} problem(s) in the policy:"]
    for err in exc.errors():
        loc = err["loc"]
        field = _dotted(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = _fields_at(Policy, loc[:-1])
            kind = "rule" if len(loc) >= 2 and loc[-2] == "rules" else "field"
            msg = f"unknown {kind} {loc[-1]!r}; valid: {', '.join(valid)}"
        else:
            msg = err["msg"]
            if (
                "input" in err
                and err["type"] != "missing"
                and not isinstance(err["input"], dict | list)
            ):
                msg += f" (got {json.dumps(err['input'], default=str)})"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names valid at `loc` inside `model`, for 'valid: ...' in errors."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else current
        elif isinstance(current, type) and issubclass(current, BaseModel):
            current = current.model_fields[str(part)].annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        non_none = [a for a in typing.get_args(annotation) if a is not type(None)]
        return non_none[0] if len(non_none) == 1 else annotation
    return annotation
