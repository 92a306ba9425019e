"""Helpers shared by the tests: the CLI's fast flags and subprocess runner (:mod:`.cli`), callbacks that
interrupt a run (:mod:`.interrupts`), a live server (:mod:`.serving`) and face photos (:mod:`.photos`)."""
