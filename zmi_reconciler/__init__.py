"""zmi-reconciler: the ZMI Server's scheduler rebuilt as configuration as code.

Data flows one way: YAML file (``schedules.d/``) -> validated schedule (:mod:`.schema`, :mod:`.loader`)
-> desired state (:mod:`.reconcile`) -> runner jobs (:mod:`.runner`, timing from :mod:`.timing`) -> runs
of tasks (:mod:`.tasks`) on the time-and-attendance store (:mod:`.tna`) -> journal events
(:mod:`.journal`) -> status and logs in the API (:mod:`.api`).
"""

__version__ = "0.1.0"
