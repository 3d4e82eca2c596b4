"""The dashboard's script: the menu of its pages (pages/ui/page.PAGES), opening the first, the Overview.

``streamlit run app.py`` serves it (app.py puts the server's host check in front of it); AppTest runs it.
"""

from pages.ui import page

page.navigation().run()
