"""A graph view of damage: what a lesion took from the wiring, measured with networkx.

:func:`damage_metrics` reads the tissue's exported graph
(:meth:`tissue.Tissue.to_networkx`: living neurons, one edge per synapse) and returns

``neurons``, ``synapses``, ``mean_degree``
    living neurons, synapses, mean synapses per living neuron;
``components``, ``largest_component``
    connected components of the living graph, and the share of living neurons
    in the largest one;
``hidden_connected``
    the share of living hidden neurons that still connect the input to the
    output region. Input neurons are clamped: a signal cannot pass *through*
    one, so the test runs on the graph of the free neurons (living hidden and
    output): a hidden neuron counts when its component there holds a neuron
    with a synapse to an input neuron and an output neuron;
``path_mean``, ``path_min``, ``path_max``, ``outputs_reached``
    the hop distance from the input region to each living output neuron
    (shortest path from any input neuron; paths never need to pass through a
    second input), its mean, min and max over the reached outputs, and the
    share of living outputs reached at all;
``clustering``
    the mean local clustering coefficient of the living graph (unweighted;
    0 for neurons with fewer than two synapses), ``networkx.average_clustering``.

These are recorded before a lesion, after it, and after recovery (see
:mod:`studies.recovery`), so the loss of wiring can be set beside the loss of
accuracy.
"""

from __future__ import annotations

import numpy as np

from .core import HIDDEN, INPUT, OUTPUT

__all__ = ["METRICS", "damage_metrics"]

METRICS = ("neurons", "synapses", "mean_degree", "components", "largest_component", "hidden_connected",
           "path_mean", "path_min", "path_max", "outputs_reached", "clustering")


def damage_metrics(tissue, graph=None) -> dict:
    """Graph metrics of a tissue's living wiring (see the module doc for each key).

    Parameters
    ----------
    tissue : Tissue
    graph : networkx.Graph, optional
        ``tissue.to_networkx()`` when already built.

    Returns
    -------
    dict
        One float per name in :data:`METRICS` (NaN where undefined, e.g. no
        output reached).
    """
    import networkx as nx

    g = tissue.to_networkx() if graph is None else graph
    n = g.number_of_nodes()
    role = tissue.role
    inputs = [v for v in g if role[v] == INPUT]
    outputs = [v for v in g if role[v] == OUTPUT]
    hidden = [v for v in g if role[v] == HIDDEN]
    out = {"neurons": float(n), "synapses": float(g.number_of_edges()),
           "mean_degree": 2.0 * g.number_of_edges() / n if n else float("nan")}
    comps = list(nx.connected_components(g))
    out["components"] = float(len(comps))
    out["largest_component"] = max(map(len, comps)) / n if n else float("nan")

    # free graph: hidden and output neurons; a component "touches" the input if one of its
    # neurons has a synapse to an input neuron, and the output if it holds an output neuron
    free = g.subgraph([v for v in g if role[v] != INPUT])
    inp = set(inputs)
    touched = 0
    for comp in nx.connected_components(free):
        has_out = any(role[v] == OUTPUT for v in comp)
        has_in = has_out and any(u in inp for v in comp for u in g.adj[v])
        if has_in and has_out:
            touched += sum(1 for v in comp if role[v] == HIDDEN)
    out["hidden_connected"] = touched / len(hidden) if hidden else float("nan")

    if inputs and outputs:
        dist = nx.multi_source_dijkstra_path_length(g, inputs, weight=lambda u, v, d: 1)
        d = np.array([dist[v] for v in outputs if v in dist], dtype=np.float64)
        out["outputs_reached"] = len(d) / len(outputs)
        out["path_mean"] = float(d.mean()) if len(d) else float("nan")
        out["path_min"] = float(d.min()) if len(d) else float("nan")
        out["path_max"] = float(d.max()) if len(d) else float("nan")
    else:
        out.update(outputs_reached=float("nan"), path_mean=float("nan"), path_min=float("nan"),
                   path_max=float("nan"))
    out["clustering"] = float(nx.average_clustering(g)) if n else float("nan")
    return {k: float(out[k]) for k in METRICS}
