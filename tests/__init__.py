"""jobgate's tests. A package, so that pytest puts the repository root on sys.path and
tests import their helpers as ``tests.support`` and the emulators as
``tests.emulators``, never from one another."""
