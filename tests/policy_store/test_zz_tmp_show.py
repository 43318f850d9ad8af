from typer.testing import CliRunner
from dunning.cli import app

def test_show(clean_db: None) -> None:
    r = CliRunner()
    for args in (["policy", "preview", "--decline-code", "insufficient_funds", "--brand", "visa", "--time-zone", "America/New_York", "--failed-at", "2025-03-03T14:00Z"],
                 ["policy", "list"], ["keys", "create", "x", "--role", "ops"], ["keys", "list"], ["policy", "show", "default"], ["policy", "--help"], ["policy", "preview", "--help"]):
        res = r.invoke(app, args, terminal_width=120)
        print(res.output[:2500])
