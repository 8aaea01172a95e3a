"""One group's window through the rules and the capacity plan, into Advice.

`evaluate` does the work once for every minute of the window (vectorized and causal), so a
backtest reads a timeline from it and a live tick reads its last minute: the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scaler.capacity import CapacityPlan, plan_capacity
from scaler.instances.alternatives import Demand, InstanceConstraints, State
from scaler.instances.catalog import Catalog, InstanceFacts, bundled_catalog
from scaler.instances.measure import DEMAND_TOTALS, demand_from_window
from scaler.instances.ranking import rank_alternatives, size_on
from scaler.logs import get_logger
from scaler.models import Advice, Alternative, Finding, Recommendation, Strategy, advice_line
from scaler.policy import GroupPolicy
from scaler.rules.base import Opinion, Rule, RuleContext, RuleOutcome
from scaler.signals import Window

__all__ = ["Evaluation", "evaluate"]

log = get_logger(__name__)


ALTERNATIVES_SHOWN = 5  # the comparison table's rows, besides "more of the same"
#: The ranking measures demand over the minutes before the advice, as a 3-hour live tick sees.
RANKING_LOOKBACK_MINUTES = 180


@dataclass(frozen=True)
class _Opinionated:
    """A finding in force from the minute it was confirmed to its end, and what it advises."""

    kind: str
    opinion: Opinion | None
    bound: State | None
    first: int
    last: int
    finding: Finding


@dataclass(frozen=True)
class Evaluation:
    """Everything the rules and the capacity plan concluded about one window."""

    window: Window
    outcomes: list[RuleOutcome]
    plan: CapacityPlan
    opinions: list[_Opinionated]
    instance: InstanceFacts | None = None
    catalog: Catalog | None = None
    constraints: InstanceConstraints | None = None
    #: Opinions per minute asked about (a timeline asks each of its minutes three times).
    _at: dict[int, list[_Opinionated]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def findings(self) -> list[Finding]:
        """All findings, in time order."""
        found = [f for o in self.outcomes for f in o.findings]
        return sorted(found, key=lambda f: (f.start, f.kind))

    def _opinions_at(self, i: int) -> list[_Opinionated]:
        if i not in self._at:
            self._at[i] = [o for o in self.opinions if o.first <= i <= o.last]
        return self._at[i]

    def _bound_at(self, i: int) -> State | None:
        return next((o.bound for o in self._opinions_at(i) if o.bound), None)

    def recommendation_at(self, i: int, *, rank: bool = True) -> Recommendation:
        """The advice at minute `i`: capacity, any instance-type opinion, and why.

        A proposed type's count is its row of the ranking (one computation for both), and
        the table always holds that row. With `rank`, a fleet bound by I/O, CPU or memory
        also gets its ranked alternatives.
        """
        decision = self.plan.at(i)
        typed = [o for o in self._opinions_at(i) if o.opinion and o.opinion.instance_type]
        reason = decision.reason
        proposed: Alternative | None = None
        instance_type = None
        table: list[Alternative] = []
        bound = self._bound_at(i)
        if typed:
            o = typed[0]
            assert o.opinion is not None and o.opinion.instance_type is not None
            instance_type = o.opinion.instance_type
            proposed, table = self._sized(i, instance_type, o.bound or bound or "io", rank=rank)
            reason += f" Instance type ({o.kind}): {o.opinion.reason.rstrip('.')}."
            if not self._allowed(instance_type):
                reason += f" Not proposed: the policy's instance_choice excludes {instance_type}."
                instance_type, proposed = None, None
            elif proposed is not None:
                reason += (
                    f" On {instance_type} that is {proposed.instances_needed} instances "
                    f"({proposed.per_instance_msgs_per_min:g} msg/min each, set by "
                    f"{proposed.limit})."
                )
        elif bound and rank:
            table = self.alternatives_at(i, bound)
        change = None
        if proposed is not None and proposed.strategy is Strategy.LOCAL_NVME:
            change = "the hot I/O moved to local NVMe"
        rec = Recommendation(
            at=self.window.time_at(i),
            group=self.window.group,
            desired_capacity=decision.desired,
            instance_type=instance_type,
            instance_type_capacity=None if proposed is None else proposed.instances_needed,
            instance_type_change=change,
            reason=reason,
            current_capacity=decision.current,
            evidence=decision.evidence(),
            alternatives=table if rank else [],
        )
        return rec.model_copy(update={"summary": advice_line(rec, self.current_type)})

    def _allowed(self, instance_type: str) -> bool:
        """Whether the policy's instance_choice lets advice propose `instance_type`."""
        if self.instance is None or self.catalog is None:
            return True  # no current type: rules propose nothing without one
        facts = self.catalog.get(instance_type)
        constraints = self.constraints or InstanceConstraints()
        return facts is not None and constraints.allows(
            facts, self.instance, self.catalog.price(instance_type)
        )

    @property
    def current_type(self) -> str | None:
        """The instance type the group runs now, if known."""
        return None if self.instance is None else self.instance.instance_type

    def _demand(self, i: int) -> Demand | None:
        """What the ranking sizes for at minute `i`: the plan's required msg/min, measured costs.

        Ranked rows size for the same demand as the capacity plan (arrivals plus draining the
        backlog), so a type's count and the current type's count answer the same question.
        """
        if self.instance is None:
            return None
        for parts in DEMAND_TOTALS:  # made once on the whole window; every slice shares them
            self.window.total(parts)
        seen = self.window.slice(i + 1 - RANKING_LOOKBACK_MINUTES, i + 1)
        demand = demand_from_window(seen, self.instance)
        required = float(self.plan.required[i])
        if demand is not None and math.isfinite(required) and required > 0:
            demand = demand.model_copy(update={"arrivals_per_min": required})
        return demand

    def _sized(
        self, i: int, instance_type: str, state: State, *, rank: bool
    ) -> tuple[Alternative | None, list[Alternative]]:
        """The proposed type's row and, with `rank`, the table that holds it.

        The row is the ranking's own arithmetic for that type (`size_on`), so the count and
        the table agree whether or not the table is shown at this minute.
        """
        demand = self._demand(i)
        if demand is None or self.instance is None or self.catalog is None:
            return None, []
        table = self.alternatives_at(i, state, demand) if rank else []
        row = next(
            (
                a
                for a in table
                if a.instance_type == instance_type and a.strategy is not Strategy.GP3_THROUGHPUT
            ),
            None,
        )
        if row is None:
            row = size_on(
                instance_type,
                self.instance,
                state,
                demand,
                self.catalog,
                self.constraints,
                utilization=self.plan.settings.target_utilization,
            )
            if row is not None:
                table = [*table, row]
        return row, table

    def alternatives_at(
        self, i: int, bound: State, demand: Demand | None = None
    ) -> list[Alternative]:
        """Other instance types for a fleet bound by `bound`, ranked on minute `i`'s demand."""
        demand = demand or self._demand(i)
        if self.instance is None or self.catalog is None or demand is None:
            return []
        return rank_alternatives(
            self.instance,
            bound,
            demand,
            self.catalog,
            self.constraints,
            utilization=self.plan.settings.target_utilization,
            limit=ALTERNATIVES_SHOWN,
        )

    def mitigations(self) -> list[Recommendation]:
        """Opinions with no instance type (a scheduled refresh, say), each at its confirmation."""
        out = []
        for o in self.opinions:
            if o.opinion is None or o.opinion.instance_type:
                continue
            rec = Recommendation(
                at=self.window.time_at(o.first),
                group=self.window.group,
                desired_capacity=None,
                instance_type=None,
                reason=o.opinion.reason,
                evidence={"finding": o.kind, "action": o.opinion.action},
            )
            out.append(rec.model_copy(update={"summary": advice_line(rec, self.current_type)}))
        return out

    def timeline(self) -> list[Recommendation]:
        """Recommendations each time the advice changes meaningfully (a backtest's view).

        A minute without a capacity opinion (missing data) neither starts nor ends advice; a
        move within the tolerance band of the last advice is not new advice; a return to
        "hold" counts once it has held for the stabilization window (no flapping at the band's
        edge); and advice moving on in the same direction is repeated at most every
        `timeline_pace_minutes` (a ramp is one story, not one line a minute). A new instance-type
        opinion is always new advice, and so is the plan going past max_size (or back under
        it): advice held at the cap reads as one more step otherwise. Alternatives are ranked
        where the bounding resource or the type opinion changes, not repeated on every step of
        a ramp.
        """
        plan, n = self.plan, self.window.length
        desired, current = plan.desired.tolist(), plan.current.tolist()
        # The plan wanting more than max_size is news of its own: held there, the advice stops
        # moving while the load goes on growing, and the timeline must say so.
        raw = plan.raw.tolist()
        with np.errstate(invalid="ignore"):
            capped = (plan.raw > plan.max_size).tolist()
        settle = plan.settings.scale_in_stabilization_minutes
        pace = plan.settings.timeline_pace_minutes
        type_at: list[str | None] = [None] * n
        for o in reversed(self.opinions):  # Earlier-registered rules win where they overlap.
            if o.opinion and o.opinion.instance_type:
                type_at[o.first : o.last + 1] = [o.opinion.instance_type] * (o.last - o.first + 1)
        picked: list[int] = []
        last: tuple[int | None, str | None, bool] = (None, None, False)
        last_at, holding = -pace, 0
        for i in range(n):
            if math.isnan(desired[i]):
                # No capacity opinion here; a new instance-type opinion is still news.
                if type_at[i] != last[1]:
                    last, last_at = (None, type_at[i], False), i
                    picked.append(i)
                continue
            change = None if desired[i] == current[i] else int(desired[i])
            holding = holding + 1 if change is None else 0
            # Held at max_size, the advice stays put: what the load needs is the story, told
            # with the same tolerance and pace as a ramp.
            told = int(raw[i]) if capped[i] else change
            key = (told, type_at[i], capped[i])
            if key == last or self._within_tolerance(last, key):
                continue
            if key[1:] == last[1:]:
                if told is None and holding < settle:
                    continue
                if told is not None and last[0] is not None and i - last_at < pace:
                    continue
            last, last_at = key, i
            picked.append(i)
        out: list[Recommendation] = []
        shown: tuple[State | None, str | None] = (None, None)
        for i in picked:
            story = (self._bound_at(i), type_at[i])
            out.append(self.recommendation_at(i, rank=story != shown))
            shown = story
        out.extend(self.mitigations())
        return sorted(out, key=lambda r: r.at)

    def _within_tolerance(
        self, last: tuple[int | None, str | None, bool], key: tuple[int | None, str | None, bool]
    ) -> bool:
        if last[0] is None or key[0] is None or last[1:] != key[1:]:
            return False
        return abs(key[0] - last[0]) <= self.plan.settings.tolerance * last[0]

    def backtest_advice(self) -> Advice:
        """Findings over the whole window and the advice timeline."""
        return Advice(
            findings=self.findings,
            recommendations=self.timeline(),
            unevaluated=[o.unevaluated for o in self.outcomes if o.unevaluated],
        )

    def live_advice(self, *, rank: bool = True) -> Advice:
        """Findings in the window and the advice for its last minute (a live tick's view).

        Without `rank`, the advice carries no table of alternatives (the proposed type's own
        count is still worked out): for a caller that acts on the advice and shows no table.
        """
        last = self.window.length - 1
        recs = [self.recommendation_at(last, rank=rank)] if last >= 0 else []
        recs += [
            r
            for r in self.mitigations()
            if any(
                o.last == last for o in self.opinions if o.opinion and not o.opinion.instance_type
            )
        ]
        return Advice(
            findings=self.findings,
            recommendations=recs,
            unevaluated=[o.unevaluated for o in self.outcomes if o.unevaluated],
        )


def _opinions(
    rule: Rule, outcome: RuleOutcome, window: Window, ctx: RuleContext
) -> list[_Opinionated]:
    out = []
    active = outcome.active
    for finding in outcome.findings:
        first = int((finding.start - window.start).total_seconds() // 60)
        last = (
            window.length - 1
            if finding.end is None
            else int((finding.end - window.start).total_seconds() // 60)
        )
        confirmed = np.flatnonzero(active[first : last + 1])
        if not len(confirmed):
            continue
        opinion = rule.recommend(finding, ctx)
        if opinion is not None or rule.bound:
            start = first + int(confirmed[0])
            out.append(_Opinionated(rule.name, opinion, rule.bound, start, last, finding))
    return out


def evaluate(
    window: Window,
    group: GroupPolicy,
    *,
    instance: InstanceFacts | None,
    bounds: tuple[int, int],
    catalog: Catalog | None = None,
) -> Evaluation:
    """Run every enabled rule and the capacity plan over `window` (bundled catalog by default)."""
    catalog = catalog or bundled_catalog()
    ctx = group.context(instance, catalog)
    outcomes, opinions = [], []
    stepped = np.zeros(window.length, dtype=bool)
    for rule in group.enabled_rules():
        outcome = rule.evaluate(window, ctx)
        outcomes.append(outcome)
        if rule.steps_scale_out:
            stepped |= outcome.active
        opinions.extend(_opinions(rule, outcome, window, ctx))
    # One event a window, not one a rule: even a filtered-out event costs a logger binding.
    log.debug(
        "rules.evaluated",
        group=window.group,
        findings={o.kind: len(o.findings) for o in outcomes},
    )
    plan = plan_capacity(
        window,
        group.capacity,
        min_size=bounds[0],
        max_size=bounds[1],
        facts=instance,
        conservative=stepped,
    )
    return Evaluation(
        window=window,
        outcomes=outcomes,
        plan=plan,
        opinions=opinions,
        instance=instance,
        catalog=catalog,
        constraints=group.instance_choice,
    )
