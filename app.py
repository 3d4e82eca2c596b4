"""Dotmap's dashboard: ``streamlit run app.py`` serves menu.py (the menu of the pages, opening the Overview)
and answers only requests that name this computer (pages/ui/hosts.py: no DNS rebinding)."""

import streamlit as st
from starlette.middleware import Middleware

from pages.ui.hosts import OwnHostOnly

app = st.App("menu.py", middleware=[Middleware(OwnHostOnly)])
