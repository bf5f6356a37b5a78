"""The Django admin's policy pages: forms, the PolicyAdmin and the Test authorization page.

Writes go through `retained.policies`; decisions come from `retained.access` and the pure
engine in `retained.policy`. Nothing here builds HTML by hand except through `format_html`.
"""
