# FocusPull for Nuke: the GUI part of the install (Nuke runs menu.py only with its interface).
from focuspull_nuke import host

host.register_menus("import focuspull_nuke.node as n; n.create()",
                    "import focuspull_nuke.node as n; n.on_preferences()")
