"""chi-up / chi-down / chi-status: the study's resources on Chameleon, on python-chi.

Modules: ``cli`` (the Click commands), ``up`` (chi-up's steps and rollback), ``teardown``
(removal and proof of it, shared by chi-down and rollback), ``status``; ``sites``,
``credentials``, ``cloud`` (python-chi context and error translation), ``lease``, ``server``,
``container``, ``floating_ip``, ``ssh``, ``waiting`` (our deadlines), ``state`` (the state file),
``inventory`` (the Ansible inventory). Each python-chi quirk worked around is documented where
it is handled.
"""
