"""The reading worklist as readers see it."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from dicomnode.cli.render import Column, ConfigOption, JsonOption, catalog_of, emit, fail, settings_from
from dicomnode.worklist.ai_status import AIStatus


def worklist(
    config: ConfigOption = None,
    order: Annotated[str, typer.Option(help="urgency or arrival")] = "urgency",
    limit: Annotated[int, typer.Option(help="First N items")] = 50,
    ai_status: Annotated[AIStatus | None, typer.Option(help="Only items with this AI status")] = None,
    as_json: JsonOption = False,
) -> None:
    """The reading worklist as readers see it: rank, priority, state and why each study is where it is."""
    from dicomnode.api.serializers import item_json
    from dicomnode.catalog.db import utcnow
    from dicomnode.worklist.order import Filters, ranked

    if order not in ("urgency", "arrival"):
        fail("--order is urgency or arrival", 2)
    how: Literal["urgency", "arrival"] = order  # type: ignore[assignment]
    settings = settings_from(config)
    now = utcnow()
    with catalog_of(settings).connect() as conn:
        query = ranked(settings.worklist.scoring, now, how, Filters(ai_status=ai_status))
        rows = conn.execute(query.limit(limit)).all()
    views = [item_json(r, now, settings.worklist) for r in rows]
    # no patient names or IDs on a terminal whose output may end up in a ticket: the study UID identifies
    emit(
        views,
        [
            Column("rank", lambda v: v["rank"]),
            Column("priority", lambda v: v["priority"]),
            Column("state", lambda v: v["state"]),
            Column("modality", lambda v: v["modalities"]),
            Column("AI", lambda v: v["ai_status"]),
            Column("study UID", lambda v: v["study_instance_uid"], uid=True),
            Column("waiting (min)", lambda v: f"{v['waiting_minutes']:.0f}"),
            Column("why", lambda v: v["explanation"]),
        ],
        as_json,
        as_dict=dict,
    )
