"""The Streamlit dashboard that reads the prices cryptoapp stores in MongoDB."""
