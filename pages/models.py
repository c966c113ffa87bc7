"""Models: every saved bundle; pick one for the other pages, compare, download, upload, delete."""
import pandas as pd
import streamlit as st

from insulin_core.labels import METRIC_LABELS, STOP_LABELS, label, plain_table
from insulin_core.bundles.registry import delete_bundle, save_bundle
from insulin_core.bundles.serving import check_bundle_fits
from ui import charts, tables
from ui.chart_specs import chart_spec
from ui.bundles import bundle_from_zip, zip_bundle
from ui.cache import load_saved, models_dir
from ui.session import (SHIPPED_MODEL, active_model_ref, candidates, current_cohort, current_fingerprint, model_label, page_header,
                        saved_models, set_active_model, shows_errors)

# the listing's columns as a person reads them (identifiers, hashes and error texts stay off the table)
# (short headers: the table must fit at 1280 px without a scroll bar; the caption below says the rest)
# (six columns: with nine, a run's automatic name made the table scroll sideways at 1280 px; the split and
# the dose-occasion MAE are in the Compare tab and the picked model's details)
TABLE_COLUMNS = {"name": "name", "trained_on_short": "trained on", "created": "saved", "mae": "MAE (U)", "r2": "R²",
                 "within_1u": "within ±1 U"}

page_header("Models")
rows = saved_models()
table = pd.DataFrame(rows)
if table.empty:
    st.info("No model yet: train one on the **Train** page, or upload a bundle below.", icon=":material/model_training:")
else:
    usable = pd.DataFrame([r for r in rows if r["ok"]], columns=[*TABLE_COLUMNS, "fingerprint"])  # none: no table
    on_screen = usable["fingerprint"] == current_fingerprint()
    usable = usable.assign(trained_on_short=usable["trained_on_short"].where(~on_screen, usable["trained_on_short"] + " · on screen"),
                           created=usable["created"].str.slice(0, 10))
    if len(usable):
        tables.show(usable[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS), key="models_table", digits=3,
                    percent=(TABLE_COLUMNS["within_1u"],))
    st.caption("Scores on each model's own test part (never used in training); *synthetic demo*: made-up "
               "patients, no real person; *on screen*: trained on exactly the data now in use; *saved*: date in "
               "UTC. The Compare tab has every score; the Glossary in the sidebar explains them.")
    broken = table[~table["ok"]]
    for _, row in broken.iterrows():
        st.warning(f"**{row['name']}** cannot be used: {row['error']}", icon=":material/broken_image:")
names = [r["name"] for r in rows if r["ok"]]
ref = active_model_ref(candidates(rows))  # the listing above, not a second one
st.caption(f"In use on Predictions and What-if: **{model_label(ref) if ref else 'none: no model was trained on the data on screen'}**")

tab_use, tab_compare, tab_upload, tab_delete = st.tabs(["Use / download", "Compare", "Upload", "Delete"])
with tab_use:
    if names:
        pick = st.selectbox("Model", names, key="models_pick")
        with shows_errors(f"{pick} cannot be used", stop=False):
            bundle = load_saved(pick)
            meta = bundle.meta
            left, right = st.columns(2)
            with left.expander("Technical details: the saved configuration"):
                st.json({"model": meta["model_config"], "window": meta["window"], "split": meta.get("split"),
                         "training": meta.get("train_config", {}), "data": meta.get("data", {})}, expanded=1)
            row = next(r for r in rows if r["name"] == pick)
            left.markdown(f"**{pick}** was trained on {row['trained_on']}"
                          f" ({'the data on screen' if row['fingerprint'] == current_fingerprint() else 'not the data on screen'}), "
                          f"saved {meta.get('created', '?')[:16].replace('T', ' ')} UTC; split: {label(row['split'])}"
                          + (f"; test MAE on dose occasions {row['mae_dose']:.3f} U." if row.get("mae_dose") is not None
                             else "."))
            reason = meta.get("stop_reason")
            right.write(f"Training stopped: {STOP_LABELS.get(reason, reason or 'not recorded')}; best epoch "
                        f"{meta.get('best_epoch', 'not recorded')}.")
            if right.button("Use on the other pages", key="models_use", icon=":material/check:"):
                set_active_model(f"saved:{pick}")
                right.success(f"**{pick}** is now used on Predictions and What-if.", icon=":material/check_circle:")
            # zipped when clicked (a callable), not on every view of every session
            right.download_button("Download (zip)", lambda path=bundle.path: zip_bundle(path), file_name=f"{pick}.zip",
                                  mime="application/zip", key="models_download", icon=":material/download:")

with tab_compare:
    st.session_state.setdefault("models_compare", names[:3])
    st.session_state["models_compare"] = [n for n in st.session_state["models_compare"] if n in names]
    chosen = st.multiselect("Models to compare", names, key="models_compare", persist_state="session")
    metric_rows = []
    for name in chosen:
        with shows_errors(f"{name} cannot be compared", stop=False):
            for metric_name, values in load_saved(name).meta.get("metrics", {}).items():
                metric_rows.append({"model": name, "predictor": metric_name, **values})
    if not chosen:
        st.info("Pick one or more models.", icon=":material/info:")
    elif metric_rows:
        metrics = pd.DataFrame(metric_rows)
        model_only = metrics[metrics["predictor"] == "model"]
        tables.show(plain_table(model_only.drop(columns="predictor")), key="models_compare_table", digits=3,
                    integers=(METRIC_LABELS["n"], METRIC_LABELS["n_dose"]))
        long = model_only.melt(id_vars=["model"], value_vars=["mae", "rmse", "r2", "within_1u"], var_name="metric")
        st.vega_lite_chart(chart_spec(charts.compare_models, long.assign(metric=long["metric"].map(METRIC_LABELS))),
                        width="stretch")
        with st.expander("Each model beside the baselines it was scored with (test part)"):
            tables.show(plain_table(metrics), digits=3,
                        integers=(METRIC_LABELS["n"], METRIC_LABELS["n_dose"]))

with tab_upload:
    upload = st.file_uploader("A bundle zip (as downloaded here)", type=["zip"], key="models_upload")
    if upload is not None:
        with shows_errors("This bundle cannot be used", stop=False):
            bundle = bundle_from_zip(upload.getvalue())
            cohort = current_cohort()
            if cohort is not None:
                for note in check_bundle_fits(bundle, cohort):
                    st.warning(note, icon=":material/warning:")
            st.success(f"Valid bundle **{bundle.name}** ({bundle.meta['window']['target']} target, "
                       f"window {bundle.meta['window']['length']}).", icon=":material/verified:")
            st.session_state.setdefault("models_upload_name", bundle.name)
            new_name = st.text_input("Add it under the name", key="models_upload_name")
            if st.button("Add to the models", key="models_add", icon=":material/add:"):
                path = save_bundle(bundle.model, bundle.meta, new_name.strip(), models_dir())
                set_active_model(f"saved:{path.name}")
                st.success(f"Added **{path.name}**; it is now used on Predictions and What-if.",
                           icon=":material/check_circle:")

with tab_delete:
    # broken bundles too: one that cannot be loaded must still be removable from here
    deletable = [r["name"] for r in rows if r["name"] != SHIPPED_MODEL]
    st.caption(f"The shipped **{SHIPPED_MODEL}** bundle (the model of the synthetic demo cohort) cannot be deleted here.")
    if deletable:
        doomed = st.selectbox("Model to delete", deletable, key="models_delete_name")
        if st.button("Delete...", key="models_delete", icon=":material/delete:"):
            st.session_state["models_delete_pending"] = doomed
        if st.session_state.get("models_delete_pending") == doomed:
            st.warning(f"Delete **{doomed}** for every user of this app? This cannot be undone.", icon=":material/warning:")
            yes, no = st.columns(2)
            if yes.button("Yes, delete it", key="models_delete_confirm", type="primary"):
                with shows_errors(f"Could not delete {doomed}", stop=False):
                    delete_bundle(doomed, models_dir())
                    st.session_state.pop("models_delete_pending")
                    if st.session_state.get("active_model") == f"saved:{doomed}":
                        st.session_state.pop("active_model")
                    st.rerun()
            if no.button("Cancel", key="models_delete_cancel"):
                st.session_state.pop("models_delete_pending")
                st.rerun()
    else:
        st.info("No model to delete.", icon=":material/info:")
