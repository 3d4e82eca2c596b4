"""Dotmap's dashboard: ``streamlit run app.py`` shows the menu of its pages and opens the first, the Overview."""

import streamlit as st

from pages.ui import page

st.navigation([st.Page(path, icon=icon) for path, icon in page.PAGES]).run()
