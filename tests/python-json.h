// JSON text as Python's json.dumps(data, ensure_ascii=False) writes it (", " and ": "
// separators): the form in which JSONSchemaBench's instances reach a model, so the grammar
// tests and the grammar benchmark match that text, not nlohmann's compact dump.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace muse::test {

inline std::string py_dumps(const nlohmann::ordered_json &v) {
    if (v.is_object()) {
        std::string out = "{";
        bool first = true;
        for (auto &[k, x] : v.items()) {
            out += (first ? "" : ", ") + nlohmann::ordered_json(k).dump() + ": " + py_dumps(x);
            first = false;
        }
        return out + "}";
    }
    if (v.is_array()) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + py_dumps(v[i]);
        return out + "]";
    }
    return v.dump();
}

} // namespace muse::test
