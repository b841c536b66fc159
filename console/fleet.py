"""The console's summary band: fleet figures, formatted."""

from datetime import datetime

from django.conf import settings

from console.formatting import ago, exact_time, local_money, run_duration, usd
from heartbeat.models import HeartbeatRun
from heartbeat.plan import capacity_plan
from sprites import selectors
from sprites.models import UserSprite


def fleet_figures(now: datetime) -> dict:
    """The summary band's figures: the fleet's cost and counts (selectors), the pool, the last sweep."""
    summary = selectors.fleet_summary(now=now)
    run = HeartbeatRun.objects.order_by("-started_at").first()
    target = settings.SPRITE_POOL_SIZE
    plan = capacity_plan()  # the cap the last tick read: a page never calls the Sprites API
    summary.update(
        plan=plan,
        plan_load=f"{plan.load:.0%}" if plan.load is not None else "",
        statuses=[
            {"value": value, "label": label, "count": summary["counts"][value]}
            for value, label in UserSprite.Status.choices
            if value != UserSprite.Status.DESTROYED
        ],
        destroyed=summary["counts"][UserSprite.Status.DESTROYED],
        pool_target=target,
        pool_short=summary["pool_ready"] < target,
        cost_month=usd(summary["cost_month_usd"]),
        vm_month=usd(summary["cost_month_usd"] - summary["model_month_usd"]),
        model_month=usd(summary["model_month_usd"]),
        model_access=settings.MODEL_ACCESS,
        projected_monthly=usd(summary["projected_monthly_usd"]),
        projected_monthly_local=local_money(summary["projected_monthly_usd"]),
        projected_heartbeat=usd(summary["projection"]["heartbeat_usd"]),
        projected_user=usd(summary["projection"]["user_usd"]),
        projected_storage=usd(summary["projection"]["storage_usd"]),
        avg_per_user=usd(summary["avg_per_user_usd"]),
        avg_per_user_local=local_money(summary["avg_per_user_usd"]),
        cost_to_date=usd(summary["cost_to_date_usd"]),
        budget=usd(settings.SPRITE_MONTHLY_BUDGET_USD)
        if settings.SPRITE_MONTHLY_BUDGET_USD is not None
        else "",
        run=run,
        run_ago=ago(run.started_at, now) if run else "",
        run_when=exact_time(run.started_at) if run else "",
        run_seconds=run_duration(run),
    )
    return summary
