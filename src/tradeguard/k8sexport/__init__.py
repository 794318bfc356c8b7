"""Export the shipped monitoring configuration as prometheus-operator objects for Kubernetes.

The rule files and the Alertmanager routing under ``deploy/`` stay the one source; this package
translates them, without changing a rule or a route, into what a cluster running the
prometheus-operator reads: PrometheusRule (``monitoring.coreos.com/v1``) and AlertmanagerConfig
(``monitoring.coreos.com/v1alpha1``) objects. Each module does one job: :mod:`.rules` the rule
files; :mod:`.alertmanager` the routing, inhibit rules and globals, with :mod:`.matchers`,
:mod:`.receivers`, :mod:`.intervals`, :mod:`.templates` and :mod:`.secrets` (references to the
one Kubernetes Secret, never a value) for their parts; :mod:`.fields` checked reads of values;
:mod:`.meta` object names and labels; :mod:`.writer` the files; :mod:`.export` ties them
together for ``tradeguard rules export``.
"""
