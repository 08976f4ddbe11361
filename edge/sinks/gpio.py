"""GpioSink: a watch rule's events drive one GPIO pin through gpiozero.

The device is gpiozero's own (``DigitalOutputDevice`` for a relay or transistor,
``LED``, ``Buzzer``), on the BCM pin ``cfg.pin``; there is no pin layer of our
own, and tests pass gpiozero's ``MockFactory`` as ``pin_factory``. Modes:

- ``on``: the pin is on while the rule's event is active.
- ``pulse``: on for ``pulse_seconds`` when the event starts, then off; the end
  of the event does not cut the pulse short (gpiozero's ``blink(n=1)`` thread
  times it). A new start during a pulse starts the pulse again.
- ``blink``: ``blink_on``/``blink_off`` while the event is active.

The pin follows the rule's events (``event()``: a start or an end, never
dropped by the runner) and every prediction's ``active`` (``emit()``), so a
prediction the runner dropped under load cannot leave the pin stuck.

The pin goes to its off state whenever the sink closes: on stop, on a reload
(the daemon closes the old sinks before starting the new ones) and at
interpreter exit (an ``atexit`` hook, run before gpiozero's own). ``close()`` is
idempotent. gpiozero is imported here, inside the sink, never at module import.
"""

from __future__ import annotations

import atexit
import errno
import logging
import threading
from typing import Any

from edge.errors import EdgeError
from edge.prediction import Prediction
from edge.sinks.base import Sink, SinkContext

logger = logging.getLogger(__name__)

DEVICES = {"output": "DigitalOutputDevice", "led": "LED", "buzzer": "Buzzer"}

GROUP_FIX = ("add the service user to the gpio group (sudo usermod -aG gpio USER, then log in again or "
             "restart the service) and check that /dev/gpiochip* exists")


class GpioSink(Sink):
    type = "gpio"

    def __init__(self, cfg, ctx: SinkContext, *, pin_factory: Any = None) -> None:
        super().__init__(cfg, ctx)
        try:
            import gpiozero
        except ImportError:
            raise EdgeError("gpio sink needs gpiozero: pip install gpiozero (or apt install python3-gpiozero)") from None
        self._gpiozero = gpiozero
        self.pin_factory = pin_factory
        self.device = None  # the gpiozero device while the sink is open
        self._lock = threading.RLock()
        self._closed = False
        self._active = False  # the rule's event is in progress (as far as this sink knows)
        self.switches = 0  # times the output was turned on (on/blink: events; pulse: pulses)

    def describe(self) -> str:
        return f"gpio:{self.cfg.pin}:{self.cfg.rule}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._closed or self.device is not None:
                return
            self.device = self._open()
            atexit.register(self.close)
        logger.info("gpio: %s on BCM pin %d follows rule %r (%s mode, active %s)", self.cfg.device, self.cfg.pin,
                    self.cfg.rule, self.cfg.mode, "high" if self.cfg.active_high else "low")

    def _open(self):
        gz = self._gpiozero
        cls = getattr(gz, DEVICES[self.cfg.device])
        pin = self.cfg.pin
        try:
            return cls(pin, active_high=self.cfg.active_high, initial_value=False, pin_factory=self.pin_factory)
        except gz.GPIOPinInUse:
            raise EdgeError(f"gpio sink: BCM pin {pin} is already in use (by another sink in this config or "
                            f"another program): use another pin or stop the other user") from None
        except PermissionError as err:
            raise EdgeError(f"gpio sink: no permission to use BCM pin {pin} ({err}): {GROUP_FIX}") from None
        except gz.BadPinFactory as err:
            raise EdgeError(f"gpio sink: no GPIO pin driver could open the GPIO chip ({err}): on Raspberry Pi OS "
                            f"install python3-lgpio (apt install python3-lgpio); if it is installed, {GROUP_FIX}") from None
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM):
                raise EdgeError(f"gpio sink: no permission to use BCM pin {pin} ({err}): {GROUP_FIX}") from None
            if err.errno == errno.EBUSY:
                raise EdgeError(f"gpio sink: BCM pin {pin} is busy (claimed by another program or a device-tree "
                                f"overlay): use another pin or free it") from None
            raise EdgeError(f"gpio sink: cannot open BCM pin {pin}: {err}") from None
        except gz.GPIOZeroError as err:
            raise EdgeError(f"gpio sink: cannot open BCM pin {pin}: {err}") from None

    def close(self) -> None:
        """Turn the output off (also cutting a pulse or blink short) and release the pin. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            device, self.device = self.device, None
            atexit.unregister(self.close)
            if device is None:
                return
            try:
                device.off()  # stops a blink/pulse thread, then drives the inactive level
            finally:
                device.close()
            self._active = False
            logger.debug("gpio: BCM pin %d off and released", self.cfg.pin)

    # ------------------------------------------------------------------ events

    def event(self, event, latest: Prediction | None) -> None:
        if event.rule == self.cfg.rule:
            self._follow(event.phase == "start")

    def emit(self, p: Prediction) -> None:
        self._follow(self.cfg.rule in p.active)

    def _follow(self, want: bool) -> None:
        """Drive the output so the rule counts as active (``want``) or not."""
        with self._lock:
            device = self.device
            if device is None or want == self._active:
                return
            self._active = want
            mode = self.cfg.mode
            if want:
                self.switches += 1
                if mode == "on":
                    device.on()
                elif mode == "pulse":
                    device.blink(on_time=self.cfg.pulse_seconds, off_time=0, n=1, background=True)
                else:
                    device.blink(on_time=self.cfg.blink_on, off_time=self.cfg.blink_off, n=None, background=True)
            elif mode != "pulse":  # a pulse runs its full length
                device.off()

    def status(self) -> dict[str, Any]:
        with self._lock:
            device = self.device
            try:
                output = "closed" if device is None else ("on" if device.is_active else "off")
            except Exception:  # a device closed under us
                output = "closed"
            return {"pin": self.cfg.pin, "rule": self.cfg.rule, "output": output, "active": self._active,
                    "switches": self.switches}
