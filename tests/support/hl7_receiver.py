"""A RIS stand-in for HL7 tests: python-hl7's own asyncio MLLP server (framing we did not write), in a thread.
It records every message and answers each with the next of the answers it is given (AA, AE, AR, or None: no
answer at all), then AA for ever."""

from __future__ import annotations

import asyncio
import threading

import hl7
from hl7.mllp import start_hl7_server


class Hl7Receiver:
    def __init__(self, answers: list[str | None] | None = None) -> None:
        self.answers = list(answers or [])
        self.received: list[tuple[str | None, str]] = []  # (answer given, message text)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(start_hl7_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader, writer) -> None:  # noqa: ANN001
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                answer = self.answers.pop(0) if self.answers else "AA"
                self.received.append((answer, str(message)))
                if answer is None:
                    continue  # say nothing: the sender must give up at its timeout
                writer.writemessage(message.create_ack(answer))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    @property
    def destination(self) -> str:
        return f"mllp://127.0.0.1:{self.port}"

    def accepted(self) -> list[hl7.Message]:
        return [hl7.parse(text) for answer, text in self.received if answer == "AA"]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
