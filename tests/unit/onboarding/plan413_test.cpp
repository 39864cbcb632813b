// Form 413 planning at the edges: 4, 5, 8, 9 sites of one professional; SA09 grouped by SIREN; sites
// lacking a responsible professional.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orgproxy/config/load.hpp"
#include "orgproxy/onboarding/plan413.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace ob = orgproxy::onboarding;
namespace tk = orgproxy::testkit;

namespace {

constexpr const char* kRppsA = "10023456782";  // Luhn-valid
constexpr const char* kRppsB = "99700270616";

std::string rang_site(const std::string& rpps, int rang) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%03d", rang);
  return tk::site_id_rpps_rang(rpps.substr(0, 10), buf);
}

struct Yaml {
  std::string text = "listeners: [{ name: ris, port: 0 }]\ntenants:\n";
  void cabinet(const std::string& id, const std::string& responsible) {
    text += "  - { id: \"" + id + "\", name: \"Cabinet " + id + "\", sector: SA07" +
            (responsible.empty() ? "" : ", responsible_rpps: \"" + responsible + "\"") + " }\n";
  }
  void company_site(const std::string& id, const std::string& representative) {
    text += "  - { id: \"" + id + "\", name: \"SEL " + id + "\", sector: SA09" +
            (representative.empty() ? "" : ", legal_representative: '" + representative + "'") + " }\n";
  }
  ob::Plan413 plan() const {
    auto loaded = orgproxy::config::load_config_text(text, "plan.yaml");
    return ob::plan_forms_413(*loaded.config);
  }
};

std::vector<std::size_t> form_sizes(const ob::Plan413& plan) {
  std::vector<std::size_t> sizes;
  for (const ob::Form413& f : plan.forms) sizes.push_back(f.site_ids.size());
  return sizes;
}

ob::Plan413 plan_for_cabinets(int n) {
  Yaml y;
  for (int i = 1; i <= n; ++i) y.cabinet(rang_site(kRppsA, i), kRppsA);
  return y.plan();
}

}  // namespace

TEST(Plan413, four_cabinets_fit_on_one_form) {
  ob::Plan413 plan = plan_for_cabinets(4);
  EXPECT_EQ(form_sizes(plan), (std::vector<std::size_t>{4}));
  EXPECT_EQ(plan.forms[0].signer, kRppsA);
  EXPECT_EQ(plan.forms[0].parts, 1u);
  EXPECT_TRUE(plan.missing_responsible.empty());
}

TEST(Plan413, five_cabinets_need_two_forms) {
  ob::Plan413 plan = plan_for_cabinets(5);
  EXPECT_EQ(form_sizes(plan), (std::vector<std::size_t>{4, 1}));
  EXPECT_EQ(plan.forms[1].part, 2u);
  EXPECT_EQ(plan.forms[1].parts, 2u);
  EXPECT_EQ(plan.forms[1].site_ids[0], rang_site(kRppsA, 5));
}

TEST(Plan413, eight_cabinets_need_two_full_forms) {
  EXPECT_EQ(form_sizes(plan_for_cabinets(8)), (std::vector<std::size_t>{4, 4}));
}

TEST(Plan413, nine_cabinets_need_three_forms) {
  ob::Plan413 plan = plan_for_cabinets(9);
  EXPECT_EQ(form_sizes(plan), (std::vector<std::size_t>{4, 4, 1}));
  EXPECT_EQ(plan.forms[2].parts, 3u);
}

TEST(Plan413, cabinets_are_grouped_by_responsible_professional) {
  Yaml y;
  y.cabinet(rang_site(kRppsA, 1), kRppsA);
  y.cabinet(rang_site(kRppsB, 1), kRppsB);
  y.cabinet(rang_site(kRppsA, 2), kRppsA);
  ob::Plan413 plan = y.plan();
  ASSERT_EQ(plan.forms.size(), 2u);
  EXPECT_EQ(plan.forms[0].signer, kRppsA);
  EXPECT_EQ(plan.forms[0].site_ids, (std::vector<std::string>{rang_site(kRppsA, 1), rang_site(kRppsA, 2)}));
  EXPECT_EQ(plan.forms[1].signer, kRppsB);
}

TEST(Plan413, company_sites_share_one_form_per_siren_signed_by_the_legal_representative) {
  const std::string sel1_a = tk::site_id_siret("8123456760001"), sel1_b = tk::site_id_siret("8123456760002");
  const std::string sel2 = tk::site_id_siret("5234567880001");
  Yaml y;
  y.company_site(sel1_a, "Dr Anne Martin");
  y.company_site(sel2, "Dr Paul Durand");
  y.company_site(sel1_b, "Dr Anne Martin");
  ob::Plan413 plan = y.plan();
  ASSERT_EQ(plan.forms.size(), 2u);
  EXPECT_EQ(plan.forms[0].kind, ob::Form413::Kind::siret);
  EXPECT_EQ(plan.forms[0].siren, "523456788");
  EXPECT_EQ(plan.forms[0].site_ids, (std::vector<std::string>{sel2}));
  EXPECT_EQ(plan.forms[1].siren, "812345676");
  EXPECT_EQ(plan.forms[1].signer, "Dr Anne Martin");
  EXPECT_EQ(plan.forms[1].site_ids, (std::vector<std::string>{sel1_a, sel1_b}));
  EXPECT_TRUE(plan.forms[1].warnings.empty());
}

TEST(Plan413, a_company_naming_two_representatives_gets_a_warning) {
  Yaml y;
  y.company_site(tk::site_id_siret("8123456760001"), "Dr Anne Martin");
  y.company_site(tk::site_id_siret("8123456760002"), "Dr Paul Durand");
  ob::Plan413 plan = y.plan();
  ASSERT_EQ(plan.forms.size(), 1u);
  ASSERT_EQ(plan.forms[0].warnings.size(), 1u);
  EXPECT_NE(plan.forms[0].warnings[0].find("2 legal representatives"), std::string::npos);
}

TEST(Plan413, sites_without_a_responsible_professional_are_listed_not_planned) {
  const std::string lonely_cabinet = rang_site(kRppsA, 7);
  const std::string lonely_company = tk::site_id_siret("8123456760003");
  Yaml y;
  y.cabinet(rang_site(kRppsA, 1), kRppsA);  // positive control: planned
  y.cabinet(lonely_cabinet, "");
  y.company_site(lonely_company, "");
  ob::Plan413 plan = y.plan();
  EXPECT_EQ(form_sizes(plan), (std::vector<std::size_t>{1}));
  ASSERT_EQ(plan.missing_responsible.size(), 2u);
  EXPECT_EQ(plan.missing_responsible[0].tenant_id, lonely_cabinet);
  EXPECT_NE(plan.missing_responsible[0].reason.find("responsible_rpps"), std::string::npos);
  EXPECT_EQ(plan.missing_responsible[1].tenant_id, lonely_company);
  EXPECT_NE(plan.missing_responsible[1].reason.find("legal_representative"), std::string::npos);
}

TEST(Plan413, csv_has_one_row_per_site_and_json_mirrors_the_plan) {
  Yaml y;
  for (int i = 1; i <= 5; ++i) y.cabinet(rang_site(kRppsA, i), kRppsA);
  y.company_site(tk::site_id_siret("8123456760001"), "Dr \"Anne\", Martin");
  y.cabinet(rang_site(kRppsB, 3), "");
  ob::Plan413 plan = y.plan();
  const std::string csv = ob::render_plan_csv(plan);
  EXPECT_EQ(csv.rfind("form,kind,signer,siren,part,parts,site_id\r\n", 0), 0u);
  EXPECT_NE(csv.find("1,rpps-rang," + std::string(kRppsA) + ",,1,2," + rang_site(kRppsA, 1) + "\r\n"),
            std::string::npos) << csv;
  EXPECT_NE(csv.find("2,rpps-rang," + std::string(kRppsA) + ",,2,2," + rang_site(kRppsA, 5) + "\r\n"),
            std::string::npos) << csv;
  EXPECT_NE(csv.find("3,siret,\"Dr \"\"Anne\"\", Martin\",812345676,1,1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("missing,,,,,," + rang_site(kRppsB, 3)), std::string::npos) << csv;
  std::size_t rows = 0;
  for (char c : csv) rows += c == '\n';
  EXPECT_EQ(rows, 1u + 5u + 1u + 1u);

  nlohmann::json j = ob::plan_to_json(plan);
  ASSERT_EQ(j["forms"].size(), 3u);
  EXPECT_EQ(j["forms"][0]["sites"].size(), 4u);
  EXPECT_EQ(j["forms"][2]["siren"], "812345676");
  EXPECT_EQ(j["missing_responsible"][0]["tenant"], rang_site(kRppsB, 3));

  const std::string table = ob::render_plan_table(plan);
  EXPECT_NE(table.find("form 2/2"), std::string::npos) << table;
  EXPECT_NE(table.find("lacking a responsible professional (1)"), std::string::npos) << table;
}
