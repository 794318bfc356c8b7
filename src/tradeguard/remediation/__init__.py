"""Remediation: actions that heal what is safe to heal, their guard rails and their audit."""
