import os
import signal

from sandglass.training.signals import StopSignals


def test_stop_signals_are_recorded_and_the_handlers_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        assert signals.received is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous
