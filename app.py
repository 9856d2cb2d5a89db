"""PruneScope dashboard: `streamlit run app.py` (the README's `make app`)."""

import streamlit as st

st.set_page_config(page_title="PruneScope", page_icon="✂️", layout="wide")

pages = [
    st.Page("dashboard/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("dashboard/runs.py", title="Runs", icon=":material/list:"),
    st.Page("dashboard/launch.py", title="Launch", icon=":material/rocket_launch:"),
    st.Page("dashboard/explore.py", title="Explore", icon=":material/tune:"),
    st.Page("dashboard/sparsity.py", title="Sparsity", icon=":material/grid_on:"),
    st.Page("dashboard/accuracy.py", title="Accuracy", icon=":material/show_chart:"),
    st.Page("dashboard/heads.py", title="Heads", icon=":material/psychology:"),
    st.Page("dashboard/scale.py", title="Data scale", icon=":material/trending_up:"),
    st.Page("dashboard/probes.py", title="Probes", icon=":material/science:"),
    st.Page("dashboard/child_tuning.py", title="Child-Tuning", icon=":material/account_tree:"),
    st.Page("dashboard/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("dashboard/export.py", title="Export", icon=":material/download:"),
]
st.sidebar.caption("PruneScope: compress and fine-tune transformers, and see what knowledge they lose.")
st.navigation(pages).run()
