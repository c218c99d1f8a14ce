// The interpreter's behaviour on small templates: whitespace control, expressions,
// filters, loops, macros, and the errors and limits a hostile template meets.
#include <gtest/gtest.h>

#include "upg/core/error.h"
#include "upg/jinja/template.h"

namespace upg::jinja {
namespace {

using json = nlohmann::ordered_json;

std::string render(std::string_view src, const json& ctx = json::object(), const RenderOptions& opt = {}) {
  return Template(src, "t").render(ctx, opt);
}

std::string error_of(std::string_view src, const json& ctx = json::object(), const RenderOptions& opt = {}) {
  try {
    render(src, ctx, opt);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Jinja, TextAndOutput) {
  EXPECT_EQ(render("a{{ 1 + 2 }}b"), "a3b");
  EXPECT_EQ(render("{{ 'x' ~ 1 ~ none }}"), "x1None");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5] }}"), "[1, 'a', None, True, 1.5]");
  EXPECT_EQ(render("{{ {'a': 1} }}"), "{'a': 1}");
  EXPECT_EQ(render("{{ x }}|{{ x.y is defined }}", {{"x", {{"z", 1}}}}), "{'z': 1}|False");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 1 / 2 }} {{ 2 ** 10 }}"), "3 -4 -2 0.5 1024");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks drops the newline after a tag, lstrip_blocks the indent before one.
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(render("a {{- 'b' -}} c"), "abc");
  EXPECT_EQ(render("a\n{# note #}\nb"), "a\nb");
  EXPECT_EQ(render("x\n"), "x");  // one trailing newline is dropped
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
}

TEST(Jinja, LoopsAndScopes) {
  const json ctx = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", ctx),
            "1a,2b,3c");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ loop.index0 }}/{{ loop.length }}{% endfor %}", ctx), "0/21/2");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem }}{% if x == 'b' %}{% break %}{% endif %}{% endfor %}", ctx),
            "a");
  EXPECT_EQ(render("{% set y = 1 %}{% for x in xs %}{% set y = 2 %}{% endfor %}{{ y }}", ctx), "1");
  EXPECT_EQ(render("{% set ns = namespace(y=1) %}{% for x in xs %}{% set ns.y = ns.y + 1 %}{% endfor %}{{ ns.y }}", ctx),
            "4");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
  EXPECT_EQ(render("{% set s %}in{{ 1 }}{% endset %}[{{ s }}]"), "[in1]");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, b=2) }}"), "1-d 1-2");
}

TEST(Jinja, FiltersAndMethods) {
  EXPECT_EQ(render("{{ '  a b  ' | trim }}|{{ 'a,b' .split(',') }}|{{ 'héllo' | length }}"), "a b|['a', 'b']|5");
  EXPECT_EQ(render("{{ 'héllo'[::-1] }}{{ [1, 2, 3][1:] }}"), "olléh[2, 3]");
  EXPECT_EQ(render("{{ {'b': 'é', 'a': [1, 2.0, none]} | tojson }}"), R"({"b": "é", "a": [1, 2.0, null]})");
  EXPECT_EQ(render("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  // As json.dumps("é🌍\n", ensure_ascii=True).
  EXPECT_EQ(render("{{ 'é🌍\\n' | tojson(ensure_ascii=true) }}"), R"("\u00e9\ud83c\udf0d\n")");
  EXPECT_EQ(render("{{ xs | selectattr('r', 'equalto', 'u') | map(attribute='c') | join(' ') }}",
                   {{"xs", {{{"r", "u"}, {"c", "1"}}, {{"r", "a"}, {"c", "2"}}, {{"r", "u"}, {"c", "3"}}}}}),
            "1 3");
  EXPECT_EQ(render("{{ x | default('d') }}{{ '' | default('e', true) }}{{ 'ab' | upper }}{{ 'hello world' | title }}"),
            "deABHello World");
  EXPECT_EQ(render("{{ 'ça va' | title }} {{ 'ÉTÉ' | lower }} {{ 'ñ'.upper() }}"), "Ça Va été Ñ");
  EXPECT_EQ(render("{{ 'abc'.startswith(('x', 'a')) }}{{ {'a': 1}.get('b', 2) }}{{ '12' | int + 1 }}"), "True213");
  EXPECT_EQ(render("{{ 'a' in 'cat' }}{{ 2 not in [1, 3] }}{{ none is none }}{{ 'x' is string }}{{ {} is mapping }}"),
            "TrueTrueTrueTrueTrue");
}

TEST(Jinja, Globals) {
  EXPECT_EQ(render("{{ range(3) | list }}{{ dict(a=1) }}"), "[0, 1, 2]{'a': 1}");
  RenderOptions opt;
  std::tm tm{};
  tm.tm_year = 124;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  opt.now = tm;
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}", json::object(), opt), "26 Jul 2024");
}

TEST(Jinja, ErrorsNameTheTemplateAndPosition) {
  EXPECT_EQ(error_of("ab\n  {{ 1 + }}"), "t:2:10: unexpected '}}'");
  EXPECT_EQ(error_of("{{ x | nosuch }}"), "t:1:8: unknown filter 'nosuch'");
  EXPECT_EQ(error_of("{% if x %}"), "t:1:11: template ended inside a block (expected {% endif %})");
  EXPECT_EQ(error_of("\n{{ raise_exception('Only user and assistant roles') }}"),
            "t:2:4: raise_exception: Only user and assistant roles");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t:1:8: unsupported operand types for +: 'str' and 'int'");
  EXPECT_EQ(error_of("{{ x.y }}"), "t:1:5: 'x' is undefined");
  EXPECT_EQ(error_of("{{ [1].append(2) }}"),
            "t:1:7: list.append() is refused: templates may not change a list (jinja2's immutable sandbox)");
  EXPECT_EQ(error_of("{% foo %}"), "t:1:4: unknown statement 'foo'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "t:1:4: string is not closed");
}

TEST(Jinja, LimitsStopHostileTemplates) {
  // Unbounded macro recursion.
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("nesting deeper than"),
            std::string::npos);
  // Deep nesting in the source.
  EXPECT_NE(error_of("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}").find("deeper than"), std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("deeper than"), std::string::npos);
  // Doubling a string until it passes the output limit.
  RenderOptions small;
  small.max_output = 1 << 16;
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                     "{% endfor %}{{ ns.s }}",
                     json::object(), small)
                .find("longer than the limit"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000 }}", json::object(), small).find("limit"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(1000000) %}{% endfor %}").find("range too big"), std::string::npos);
  // Work, not just size: nested loops that print nothing.
  RenderOptions few;
  few.max_steps = 100000;
  EXPECT_NE(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", json::object(), few)
                .find("steps of work"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.self = [ns] %}").find("contain itself"), std::string::npos);
}

}  // namespace
}  // namespace upg::jinja
