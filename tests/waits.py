"""How long tests wait for what takes seconds on an idle machine: a page run, an epoch, a server start.

A wait is not a speed check (bench/ measures speed, as ratios taken in one run). It only has to end
a test that would otherwise wait forever, and pytest-timeout does that too. So every wait is far
above what a busy machine takes, and a test passes on a 2-core machine with both cores taken by
other work (issue 18); it fails only on a hang.
"""
WAIT_S = 300
WAIT_MS = WAIT_S * 1000
