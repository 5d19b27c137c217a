import asyncio

from kit import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_processes_run_on_uvloop_where_it_is_installed(monkeypatch):
    monkeypatch.delenv("RESERVA_EVENT_LOOP", raising=False)
    assert event_loop.run(_loop_module()).startswith("uvloop")
    assert event_loop.name() == "uvloop"


def test_asyncio_s_own_loop_can_be_chosen(monkeypatch):
    monkeypatch.setenv("RESERVA_EVENT_LOOP", "asyncio")
    assert event_loop.run(_loop_module()).startswith("asyncio")
    assert event_loop.name() == "asyncio"
