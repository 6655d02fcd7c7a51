"""The LSF emulator: ``bin/`` holds the commands, ``lsfemu`` what they run."""
