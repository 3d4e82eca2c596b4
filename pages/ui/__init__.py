"""The Streamlit layer shared by the pages: cached wrappers over core, session state, renderers."""
