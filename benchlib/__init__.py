"""benchlib: which model with which prompt should we ship, and did this change make things worse?

The library holds everything that is not Prefect glue; `flows/` and `tasks/` only call into it.
"""

__version__ = "0.1.0"
