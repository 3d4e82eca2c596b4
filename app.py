"""Dotmap's dashboard: ``streamlit run app.py`` shows the menu of its pages and opens the first, the Overview."""

from pages.ui import page

page.navigation().run()
