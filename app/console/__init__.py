"""The operator console (/console) and the offline API docs: a presentation layer over the services.

Resource packages never import this package.
"""

