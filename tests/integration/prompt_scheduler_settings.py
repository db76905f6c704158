"""The service's settings, with django-q2's scheduler ticking on the guard loop's first pass.

django-q2 calls its scheduler once the guard loop's sleeps (``guard_cycle``) add up to 30 s,
so with the default 0.5 s cycle a cluster first looks at its schedules 30 s after it starts.
A 30 s cycle gets there on the first pass: the startup sweeps that the process tests wait for
begin at once. The longer sleep only slows the guard's other chores (restarting a dead worker,
saving the cluster's status), which no test here observes.
"""

from molecule.settings import *  # noqa: F403

Q_CLUSTER = {**Q_CLUSTER, "guard_cycle": 30}  # noqa: F405
