"""Screenshots of what an approver sees in the Temporal web UI: `python -m tests.ui.screenshot [DIR]`
(needs Debian's `chromium`; writes DIR/run.png and DIR/list.png, default DIR: ./screenshots).

Starts `orch dev` in a temporary state directory on free ports, starts the walkthrough's run
that waits for approval ("convert 9:00 UTC to Paris"), waits until it does, and has headless
chromium load the run's page (its User Metadata tab) and the workflow list. Current Details show
the waiting call (tool, intent, arguments, expiry) and the signal input that approves or
denies it; the list (UI 2.54 has no Summary column there) finds the run by its status.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from tests.cli.test_orch_dev import OrchDev, _wait_status
from tests.orch_cli import run_orch
from tests.ui.browser import click, page, screenshot, wait_for_text


async def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as state:
        dev = OrchDev(Path(state) / "state")
        await dev.start()
        try:
            prompt = "convert 9:00 UTC to Paris"
            code, run_id, err = await run_orch("run", "--no-wait", prompt, "--api-url", dev.api_url)
            if code != 0:
                raise SystemExit(f"screenshot: orch run failed: {err}")
            run_id = run_id.strip()
            await _wait_status(dev.api_url, run_id, lambda run: run["pending_approvals"])
            ui = f"http://127.0.0.1:{dev.ports['ui']}/namespaces/default/workflows"
            async with page(f"{ui}/{run_id}") as run_page:
                await click(run_page, "User Metadata")  # where UI 2.x shows Summary and Current Details
                await wait_for_text(run_page, "Current Details")
                await asyncio.sleep(3)  # its markdown renders in a frame of its own: no text to wait on
                await screenshot(run_page, out_dir / "run.png")
            async with page(ui, width=2200, height=700) as list_page:
                await wait_for_text(list_page, run_id)
                await screenshot(list_page, out_dir / "list.png")
            print(f"{out_dir / 'run.png'}: the page of {run_id}\n{out_dir / 'list.png'}: the workflow list")
        finally:
            await dev.interrupt()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")))
