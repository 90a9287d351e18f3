"""Pipelines that combine the layers below: measure on this machine, fit, search, validate.

Layering (each imports only those before it): ``space``, ``graph``, ``network`` ->
``data``, ``measure`` -> ``predictors`` -> ``search`` -> ``workflow`` -> ``cli``.
"""
